"""Caddy's JSON config as plain data: pure functions from routes, custom hosts and TLS
settings to the dicts that ``Router`` loads through the admin API.

Apart from the admin client (``router.py``) so the config's shape can be read, and
tested, without any I/O: the same inputs always give the same dict.

Custom domains (``CustomHost``) get a second server on the HTTPS port with the same
handler as their service's default host, exact names before wildcards so the more
specific domain wins; the HTTP server answers them with a redirect to HTTPS. Their
certificates come from the tls app: exact names are managed ahead of time
(``certificates.automate``), wildcards are issued per host on the first handshake
(on-demand TLS, allowed only when the agent's ``ask`` URL says 200), because an ACME CA
gives wildcard certificates only through DNS-01, which needs a DNS provider's API. The
issuer is ACME or Caddy's internal CA (``TlsSettings``).

A route's instances are one DNS name's A records (``routedns.route_name``), which Caddy
asks slipway's responder for at most every ``DNS_REFRESH``; the static ``upstreams``
beside that dynamic source are Caddy's fallback while the responder cannot answer.

With an access log, Caddy writes one JSON line per request of the servers to that file
(logger ``slipway-access``, rolled by size, rolled files not gzipped so a reader can
finish one after a roll); ``observe/accesslog.py`` reads it. Those lines are kept out of
Caddy's default log. Checked against Caddy 2.6.2.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RouterError
from .ingress import Ingress, ingress_routes
from .private import PRIVATE_SERVER_NAME, private_server
from .routedns import route_name
from .tracecontext import SCRATCH, trace_context

log = logging.getLogger("slipway.router")

SERVER_NAME = "slipway"
TLS_SERVER_NAME = "slipway-tls"
ISSUERS = ("acme", "internal")
# ACME challenges Caddy may answer, by their RFC 8555 names, and Caddy's names for them.
ACME_CHALLENGES = {"http-01": "http", "tls-alpn-01": "tls-alpn"}

# A request that arrives while instances are being switched waits for a healthy
# upstream instead of failing at once.
TRY_DURATION = "5s"
# Dial errors on loopback are instant; with a dynamic source Caddy 2.6 forgets a dead
# instance's failures between requests, so each retry should cost little.
TRY_INTERVAL = "50ms"
# How long Caddy keeps a route's A records before asking the responder again: a new
# instance takes traffic, a leaving one stops getting it, within this.
DNS_REFRESH_SECONDS = 1
DNS_REFRESH = f"{DNS_REFRESH_SECONDS}s"
# An upstream that refused a connection is skipped this long; kept shorter than
# TRY_DURATION so that a single upstream that hiccuped is retried within one request.
FAIL_DURATION = "2s"
MAX_FAILS = 1

PAUSED_BODY = "Service is paused"
UNAVAILABLE_BODY = "Service is not available"
UNKNOWN_HOST_BODY = "No service at this host"

ACCESS_LOGGER = "slipway-access"
# The server's access logs are emitted under http.log.access.<default_logger_name>.
ACCESS_LOGGER_NAME = f"http.log.access.{ACCESS_LOGGER}"
ACCESS_LOG_ROLL_MB = 100
ACCESS_LOG_KEEP = 2


@dataclass(frozen=True)
class Route:
    """Where one host's requests go; no upstreams means no healthy instance. A ``traced``
    host's requests must cross Caddy, whose access log gives their router spans
    (``observe/tracing.py``), whatever the data plane, and get a trace context
    (``tracecontext.py``)."""

    host: str
    upstreams: tuple[str, ...]
    paused: bool = False
    traced: bool = False
    public: bool = True  # served on http_port (and its custom domains on https_port)
    private: bool = False  # served on the private listener (``private.py``)
    # (upstream, weight 1..256) when the upstreams take unequal shares (a traffic split
    # between revisions, ``traffic.py``); empty: equal shares.
    weights: tuple[tuple[str, int], ...] = ()

    def weight(self, upstream: str) -> int:
        """The upstream's weight: 1 unless the route splits its requests unequally."""
        return dict(self.weights).get(upstream, 1)


@dataclass(frozen=True)
class CustomHost:
    """A user's domain (``example.com``, ``www.example.com`` or ``*.example.com``) served
    over HTTPS like ``target``, its service's default host (a ``Route.host``)."""

    name: str
    target: str


@dataclass(frozen=True)
class TlsSettings:
    """Where custom domains are served over HTTPS and who issues their certificates."""

    https_port: int = 443
    issuer: str = "acme"  # or "internal": Caddy's own CA
    acme_ca: str = ""
    acme_email: str = ""
    acme_ca_root: str = ""  # PEM file of a private ACME CA's root, trusted by Caddy
    ask_url: str = ""  # on-demand TLS asks here before issuing for a wildcard's host
    # The challenges an ACME CA may validate names by: HTTP-01 on http_port, TLS-ALPN-01
    # on https_port (leave one out when its port is not reachable from the CA).
    acme_challenges: tuple[str, ...] = tuple(ACME_CHALLENGES)
    # Seconds between Caddy's passes over its certificates to renew them (0: Caddy's
    # default, 10 minutes); short only for CAs with short-lived certificates.
    renew_interval: float = 0.0

    def __post_init__(self) -> None:
        if self.issuer not in ISSUERS:
            choices = ", ".join(ISSUERS)
            raise RouterError(f"tls issuer must be one of {choices}, not {self.issuer!r}")
        unknown = [c for c in self.acme_challenges if c not in ACME_CHALLENGES]
        if unknown or not self.acme_challenges:
            raise RouterError(
                f"acme_challenges must name one or more of {', '.join(ACME_CHALLENGES)},"
                f" not {list(self.acme_challenges)}"
            )
        if self.renew_interval < 0:
            raise RouterError(
                f"tls_renew_interval must be 0 (Caddy's default) or more seconds,"
                f" not {self.renew_interval}"
            )


def _text_response(status: int, body: str) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
        "body": body,
    }


def _proxy(
    host: str, upstreams: list[str], route_dns: str | None, weighted: bool = False
) -> dict[str, Any]:
    handler: dict[str, Any] = {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": dial} for dial in upstreams],
        "load_balancing": {
            "selection_policy": {"policy": "round_robin"},
            "try_duration": TRY_DURATION,
            "try_interval": TRY_INTERVAL,
        },
        "health_checks": {"passive": {"fail_duration": FAIL_DURATION, "max_fails": MAX_FAILS}},
    }
    ports = {dial.rpartition(":")[2] for dial in upstreams}
    addresses = ipv4_hosts(upstreams)
    # Instances that differ by address only; A records carry no weights, so a weighted
    # route lists its upstreams (each as often as its share, ``_in_proportion``).
    if route_dns and len(ports) == 1 and addresses and not weighted:
        handler["dynamic_upstreams"] = {
            "source": "a",
            "name": route_name(host),
            "port": ports.pop(),
            "refresh": DNS_REFRESH,
            "resolver": {"addresses": [f"udp/{route_dns}"]},
            "dial_timeout": "1s",
        }
    return handler


def _host_route(host: str, route: Route, route_dns: str | None) -> dict[str, Any]:
    return {"match": [{"host": [host]}], "handle": _handlers(route, route_dns), "terminal": True}


def _handlers(route: Route, route_dns: str | None = None) -> list[dict[str, Any]]:
    if route.paused:
        return [_text_response(503, PAUSED_BODY)]
    upstreams = sorted(set(route.upstreams))
    if not upstreams:
        return [_text_response(503, UNAVAILABLE_BODY)]
    weighted = len({route.weight(u) for u in upstreams}) > 1
    if weighted:
        upstreams = _in_proportion(upstreams, route)
    proxy = _proxy(route.host, upstreams, route_dns, weighted)
    if not route.traced:
        return [proxy]
    proxy["headers"] = {"request": {"delete": [SCRATCH]}}
    return [trace_context(), proxy]


def _in_proportion(upstreams: list[str], route: Route) -> list[str]:
    """Each upstream as many times as its weight, reduced by their common divisor: Caddy
    2.6 has no weighted selection policy (``weighted_round_robin`` came in 2.7), and
    round robin over this list gives each its share."""
    weights = [route.weight(u) for u in upstreams]
    common = functools.reduce(math.gcd, weights)
    return [u for u, w in zip(upstreams, weights, strict=True) for _ in range(w // common)]


def ipv4_hosts(upstreams: Iterable[str]) -> list[str] | None:
    """The IPv4 addresses of ``upstreams`` (host:port), or None if one is not IPv4: only
    A records can carry them."""
    hosts = []
    for dial in upstreams:
        host = dial.rpartition(":")[0]
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return None
        hosts.append(host)
    return sorted(set(hosts))


def without_instances(config: Any) -> Any:
    """``config`` less the static upstreams of dynamic proxies: what a load must change."""
    if isinstance(config, list):
        return [without_instances(item) for item in config]
    if not isinstance(config, dict):
        return config
    dynamic = "dynamic_upstreams" in config
    return {
        key: without_instances(value)
        for key, value in config.items()
        if not (dynamic and key == "upstreams")
    }


def _redirect_to_https(https_port: int) -> dict[str, Any]:
    port = "" if https_port == 443 else f":{https_port}"
    return {
        "handler": "static_response",
        "status_code": 308,
        "headers": {"Location": [f"https://{{http.request.host}}{port}{{http.request.uri}}"]},
    }


def _issuer(tls: TlsSettings) -> dict[str, Any]:
    if tls.issuer == "internal":
        return {"module": "internal"}
    issuer: dict[str, Any] = {"module": "acme"}
    if tls.acme_ca:
        issuer["ca"] = tls.acme_ca
    if tls.acme_email:
        issuer["email"] = tls.acme_email
    if tls.acme_ca_root:
        issuer["trusted_roots_pem_files"] = [tls.acme_ca_root]
    off = [caddy for name, caddy in ACME_CHALLENGES.items() if name not in tls.acme_challenges]
    if off:
        issuer["challenges"] = {caddy: {"disabled": True} for caddy in off}
    return issuer


def _tls_app(exact: list[str], wildcards: list[str], tls: TlsSettings) -> dict[str, Any]:
    """Exact names are obtained and renewed ahead of time; a wildcard's hosts on demand."""
    policies: list[dict[str, Any]] = []
    app: dict[str, Any] = {"automation": {"policies": policies}}
    if tls.renew_interval:
        app["automation"]["renew_interval"] = f"{tls.renew_interval}s"
    # The internal CA's certificates name no OCSP responder: don't try to staple.
    quiet = {"disable_ocsp_stapling": True} if tls.issuer == "internal" else {}
    if exact:
        app["certificates"] = {"automate": exact}
        policies.append({"subjects": exact, "issuers": [_issuer(tls)], **quiet})
    if wildcards:
        policies.append(
            {"subjects": wildcards, "issuers": [_issuer(tls)], "on_demand": True, **quiet}
        )
        if tls.ask_url:
            app["automation"]["on_demand"] = {"ask": tls.ask_url}
    return app


def _custom_routes(
    hosts: Iterable[CustomHost], by_host: dict[str, Route]
) -> list[tuple[str, Route]]:
    """(name, route of its target) for each custom host whose service has a route; exact
    names first, then wildcards, each sorted, so the more specific name matches first."""
    chosen: dict[str, Route] = {}
    for host in hosts:
        name, target = host.name.lower(), host.target.lower()
        if target not in by_host:
            continue  # its service has no route (deleted meanwhile): nothing to serve
        if name in chosen or name in by_host:
            log.warning("custom domain %s is claimed twice; keeping the first", name)
            continue
        chosen[name] = by_host[target]
    return sorted(chosen.items(), key=lambda item: (item[0].startswith("*."), item[0]))


def _access_logging(path: Path, roll_mb: int, keep: int) -> dict[str, Any]:
    return {
        "logs": {
            # Caddy's own log (stderr) stays as it is, minus the access lines.
            "default": {"exclude": [ACCESS_LOGGER_NAME]},
            ACCESS_LOGGER: {
                "writer": {
                    "output": "file",
                    "filename": str(path),
                    "roll_size_mb": roll_mb,
                    "roll_keep": keep,
                    "roll_gzip": False,
                },
                "encoder": {"format": "json"},
                "include": [ACCESS_LOGGER_NAME],
            },
        }
    }


def build_config(
    routes: Iterable[Route],
    custom_hosts: Iterable[CustomHost],
    *,
    admin_listen: str,
    http_port: int,
    tls: TlsSettings,
    route_dns: str | None,
    access_log: Path | None,
    access_log_roll_mb: int,
    access_log_keep: int,
    ingress: Ingress | None = None,
    http_listen: str | None = None,
    private_listen: str | None = None,
) -> dict[str, Any]:
    """Caddy's whole JSON config, ordered by host so it compares stably. The admin API
    stays at ``admin_listen`` after a load; ``route_dns`` is the responder that resolves
    routes' instances (None: static upstreams only); with ``access_log`` the servers
    log every request there; ``ingress`` puts the agent's webhooks and API on public
    names over HTTPS (``ingress.py``); ``http_listen`` moves the HTTP server off
    ``http_port`` (``unix//path``: behind HAProxy, ``haproxy.py``); ``private_listen``
    is where private routes are served (``private.py``; None: nowhere)."""
    ingress = ingress or Ingress()
    every: dict[str, Route] = {}
    for route in routes:
        host = route.host.lower()
        if host in every:
            raise ValueError(f"two routes for host {host!r}")
        every[host] = route
    by_host = {host: route for host, route in every.items() if route.public}
    caddy_routes = [_host_route(host, by_host[host], route_dns) for host in sorted(by_host)]
    custom = _custom_routes(custom_hosts, by_host)
    public = [n for n in ingress.names() if n not in by_host]
    if custom or public:
        caddy_routes.append(
            {
                "match": [{"host": [name for name, _ in custom] + public}],
                "handle": [_redirect_to_https(tls.https_port)],
                "terminal": True,
            }
        )
    caddy_routes.append({"handle": [_text_response(404, UNKNOWN_HOST_BODY)]})
    server: dict[str, Any] = {
        "listen": [http_listen or f":{http_port}"],
        # *.localhost would otherwise get certificates from Caddy's CA.
        "automatic_https": {"disable": True},
        "routes": caddy_routes,
    }
    config: dict[str, Any] = {
        # /load replaces the admin section too: keep it where we reach it.
        "admin": {"listen": admin_listen},
        "apps": {"http": {"servers": {SERVER_NAME: server}}},
    }
    if custom or public:
        _add_https(config, custom, ingress, http_port=http_port, tls=tls, route_dns=route_dns)
    if private_listen:
        private = [_host_route(h, r, route_dns) for h, r in sorted(every.items()) if r.private]
        config["apps"]["http"]["servers"][PRIVATE_SERVER_NAME] = private_server(
            private, private_listen, _text_response(404, UNKNOWN_HOST_BODY)
        )
    if access_log is not None:
        # Every request of the servers, whatever its host, goes to the access logger.
        for each in config["apps"]["http"]["servers"].values():
            each["logs"] = {"default_logger_name": ACCESS_LOGGER}
        config["logging"] = _access_logging(access_log, access_log_roll_mb, access_log_keep)
    return config


def _add_https(
    config: dict[str, Any],
    custom: list[tuple[str, Route]],
    ingress: Ingress,
    *,
    http_port: int,
    tls: TlsSettings,
    route_dns: str | None,
) -> None:
    """The HTTPS server for custom domains and the agent's ingress names, and the tls
    app that gets their certificates (the ingress names' ahead of time, like exact
    custom domains)."""
    http = config["apps"]["http"]
    # Where ACME's HTTP-01 and TLS-ALPN-01 challenges arrive, and where redirects point.
    http["http_port"] = http_port
    http["https_port"] = tls.https_port
    routes = ingress_routes(ingress) + [
        _host_route(name, route, route_dns) for name, route in custom
    ]
    routes.append({"handle": [_text_response(404, UNKNOWN_HOST_BODY)]})
    http["servers"][TLS_SERVER_NAME] = {
        "listen": [f":{tls.https_port}"],
        # Certificates are managed by the tls app below, not guessed from the routes.
        "automatic_https": {"disable": True},
        "tls_connection_policies": [{}],
        "protocols": ["h1", "h2"],
        "routes": routes,
    }
    names = [name for name, _ in custom]
    exact = sorted({n for n in names if not n.startswith("*.")} | set(ingress.names()))
    wildcards = [n for n in names if n.startswith("*.")]
    config["apps"]["tls"] = _tls_app(exact, wildcards, tls)
    if tls.issuer == "internal":
        # Never try to put Caddy's root into the system trust store (needs root).
        config["apps"]["pki"] = {"certificate_authorities": {"local": {"install_trust": False}}}
