"""What a person running slipway sees: logs (and later metrics, events, audit)."""
