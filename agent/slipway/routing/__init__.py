"""Routes: the Caddy admin client and the route DNS responder."""
