"""The private listener: a Caddy server of its own for private services (App Runner's
IsPubliclyAccessible false), on ``private_listen``, an address only the private side of
the host reaches. The public servers leave private hosts out (``Route.public``), so
there they get the 404 of an unknown host; here only private hosts are served
(``Route.private``), each at the DomainName its VPC ingress connection reports. A
private service without a connection is served nowhere, as in App Runner.

Apart from ``caddyconfig.py`` so the split can be read on its own; that module builds
each host's route and hands them here.
"""

from __future__ import annotations

from typing import Any

PRIVATE_SERVER_NAME = "slipway-private"


def private_server(
    host_routes: list[dict[str, Any]], listen: str, not_found: dict[str, Any]
) -> dict[str, Any]:
    """Caddy's server on ``listen`` for ``host_routes`` (one per private host), and
    ``not_found`` for every other host."""
    return {
        "listen": [listen],
        # Private hosts are plain HTTP, as services' default hosts are.
        "automatic_https": {"disable": True},
        "routes": [*host_routes, {"handle": [not_found]}],
    }
