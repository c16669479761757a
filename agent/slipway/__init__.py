"""slipway: a self-hosted, wire-compatible AWS App Runner."""
