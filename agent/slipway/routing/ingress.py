"""The agent's own public ingress through Caddy, as plain data: the webhooks on
``public_hooks_domain`` and the API on ``api_domain``, over HTTPS, reverse-proxied to
the agent on loopback, so the agent itself never listens beyond loopback.

The hooks domain serves ``/hooks/github`` and ``/hooks/registry`` and nothing else
(404): GitHub and the registry need those, and nothing else of the agent should be on
the internet with them. The API domain serves App Runner's ``POST /`` and slipway's own
``/slipway/v1/...`` (the CLI uses them), but not the unsigned on-demand TLS ``ask``, the
metrics or the health page. Caddy sets ``CLIENT_HEADER`` to the address it took the
connection from, replacing whatever the client sent, so the agent can rate-limit the
real client (it trusts the header only from loopback: ``api/edge.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequest

# Set by Caddy on every proxied request: the client's address as Caddy saw it.
CLIENT_HEADER = "X-Slipway-Client-Address"
HOOK_PATHS = ("/hooks/github", "/hooks/registry")
API_PATHS = ("/", "/slipway/v1/*", "/console", "/console/*")
# Under API_PATHS but not for the internet: Caddy's own on-demand TLS question.
API_HIDDEN_PATHS = ("/slipway/v1/domains/ask",)
NOT_HERE_BODY = "Not found"


@dataclass(frozen=True)
class Ingress:
    """Which public names serve the agent (either may be empty: not served) and the
    loopback address the agent listens on (``host:port``)."""

    hooks_domain: str = ""
    api_domain: str = ""
    upstream: str = "127.0.0.1:8780"

    def check(self) -> None:
        """Refuse a name Caddy could not serve, naming the setting."""
        for setting, name in (
            ("public_hooks_domain", self.hooks_domain),
            ("api_domain", self.api_domain),
        ):
            if name and (
                name.startswith("*.")
                or "/" in name
                or ":" in name
                or not all(part and len(part) <= 63 for part in name.split("."))
            ):
                raise InvalidRequest(
                    f"{setting} must be a DNS name such as hooks.example.com, not {name!r}"
                )

    def names(self) -> list[str]:
        """The names that need a certificate, sorted, each once."""
        return sorted({n.lower() for n in (self.hooks_domain, self.api_domain) if n})


def _paths_by_name(ingress: Ingress) -> dict[str, list[str]]:
    paths: dict[str, list[str]] = {}
    if ingress.hooks_domain:
        paths.setdefault(ingress.hooks_domain.lower(), []).extend(HOOK_PATHS)
    if ingress.api_domain:
        paths.setdefault(ingress.api_domain.lower(), []).extend(API_PATHS)
    return paths


def _not_here() -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": 404,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
        "body": NOT_HERE_BODY,
    }


def _to_agent(upstream: str) -> dict[str, Any]:
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": upstream}],
        # Replaces a value the client sent: only Caddy's word reaches the agent.
        "headers": {"request": {"set": {CLIENT_HEADER: ["{http.request.remote.host}"]}}},
    }


def ingress_routes(ingress: Ingress) -> list[dict[str, Any]]:
    """Routes of the HTTPS server for the ingress names: the allowed paths to the agent,
    any other path of those names 404 (the more specific routes come first)."""
    routes: list[dict[str, Any]] = []
    for name, paths in sorted(_paths_by_name(ingress).items()):
        handlers: list[dict[str, Any]] = []
        hidden = [p for p in API_HIDDEN_PATHS if "/slipway/v1/*" in paths]
        if hidden:
            handlers.append({"match": [{"path": hidden}], "handle": [_not_here()]})
        handlers.append({"match": [{"path": paths}], "handle": [_to_agent(ingress.upstream)]})
        handlers.append({"handle": [_not_here()]})
        routes.append(
            {
                "match": [{"host": [name]}],
                "handle": [{"handler": "subroute", "routes": handlers}],
                "terminal": True,
            }
        )
    return routes
