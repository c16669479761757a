"""Caddy, driven only through its admin API: the agent owns Caddy's whole config.

The config is built as plain data (``build_config``) and pushed with ``POST /load``
only when it differs from what Caddy reports at ``GET /config/``, so a reconcile
loop can call ``apply`` every few seconds without reloading Caddy, and a Caddy
that restarted with an empty config gets its routes back on the next pass.

Custom domains (``CustomHost``, from the provider callable given to the Router) get a
second server on the HTTPS port with the same handler as their service's default host,
exact names before wildcards so the more specific domain wins; the HTTP server answers
them with a redirect to HTTPS. Their certificates come from the tls app: exact names are
managed ahead of time (``certificates.automate``), wildcards are issued per host on the
first handshake (on-demand TLS, allowed only when the agent's ``ask`` URL says 200),
because an ACME CA gives wildcard certificates only through DNS-01, which needs a DNS
provider's API. The issuer is ACME or Caddy's internal CA (``TlsSettings``).

Instances change without a config load. Each instance publishes its port on its own
loopback address, so a route's instances are one DNS name's A records: Caddy resolves
the route's name (``routedns.route_name``) through slipway's responder (``route_dns``)
at most every ``DNS_REFRESH``, and ``apply`` rewrites the responder's table. A load
would restart Caddy's servers, which closes idle keep-alive connections and loses a
request sent on one at that instant; so ``apply`` loads only when the config differs
in more than the instance addresses (a host added or removed, a pause, a route going
from none to some instances). The static ``upstreams`` beside the dynamic source are
Caddy's fallback while the responder cannot answer: the instances as of the last load.

With ``access_log`` set, Caddy writes one JSON line per request of the server to that
file (logger ``slipway-access``, rolled by size, rolled files not gzipped so a reader can
finish one after a roll); ``observe/metrics.py`` reads it. Those lines are kept out of
Caddy's default log. Checked against Caddy 2.6.2.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..errors import RouterError
from .keeper import RouteDnsKeeper
from .routedns import RouteTable, route_name

log = logging.getLogger("slipway.router")

SERVER_NAME = "slipway"
TLS_SERVER_NAME = "slipway-tls"
ISSUERS = ("acme", "internal")

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
# When a route table change has reached Caddy everywhere, with a margin.
ROUTE_CHANGE_SECONDS = DNS_REFRESH_SECONDS + 0.5
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
    """Where one host's requests go; no upstreams means no healthy instance."""

    host: str
    upstreams: tuple[str, ...]
    paused: bool = False


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

    def __post_init__(self) -> None:
        if self.issuer not in ISSUERS:
            choices = ", ".join(ISSUERS)
            raise RouterError(f"tls issuer must be one of {choices}, not {self.issuer!r}")


def _text_response(status: int, body: str) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
        "body": body,
    }


def _proxy(host: str, upstreams: list[str], route_dns: str | None) -> dict[str, Any]:
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
    addresses = _ipv4_hosts(upstreams)
    if route_dns and len(ports) == 1 and addresses:  # instances that differ by address only
        handler["dynamic_upstreams"] = {
            "source": "a",
            "name": route_name(host),
            "port": ports.pop(),
            "refresh": DNS_REFRESH,
            "resolver": {"addresses": [f"udp/{route_dns}"]},
            "dial_timeout": "1s",
        }
    return handler


def _handler(route: Route, route_dns: str | None = None) -> dict[str, Any]:
    if route.paused:
        return _text_response(503, PAUSED_BODY)
    upstreams = sorted(set(route.upstreams))
    if not upstreams:
        return _text_response(503, UNAVAILABLE_BODY)
    return _proxy(route.host, upstreams, route_dns)


def _ipv4_hosts(upstreams: Iterable[str]) -> list[str] | None:
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


def _without_instances(config: Any) -> Any:
    """``config`` less the static upstreams of dynamic proxies: what a load must change."""
    if isinstance(config, list):
        return [_without_instances(item) for item in config]
    if not isinstance(config, dict):
        return config
    dynamic = "dynamic_upstreams" in config
    return {
        key: _without_instances(value)
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
    return issuer


def _tls_app(exact: list[str], wildcards: list[str], tls: TlsSettings) -> dict[str, Any]:
    """Exact names are obtained and renewed ahead of time; a wildcard's hosts on demand."""
    policies: list[dict[str, Any]] = []
    app: dict[str, Any] = {"automation": {"policies": policies}}
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


def _admin_listen(admin_url: str) -> str:
    parts = urlsplit(admin_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RouterError(f"Caddy admin URL {admin_url!r} is not an http://host:port URL")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{host}:{port}"


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


class Router:
    """Turns the routes of all services into Caddy's config and keeps Caddy on it."""

    def __init__(
        self,
        admin_url: str,
        http_port: int,
        *,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        access_log: Path | None = None,
        access_log_roll_mb: int = ACCESS_LOG_ROLL_MB,
        access_log_keep: int = ACCESS_LOG_KEEP,
        tls: TlsSettings | None = None,
        custom_hosts: Callable[[], Iterable[CustomHost]] = lambda: (),
        route_dns: str | None = None,
        route_table: Path | None = None,
    ) -> None:
        self.admin_url = admin_url.rstrip("/")
        # Where Caddy resolves routes' instances, and the table the responder there reads.
        self.route_dns = route_dns
        self.route_table = RouteTable(route_table) if route_table and route_dns else None
        self._route_dns_keeper: RouteDnsKeeper | None = None
        if self.route_table is not None and route_dns:
            table = self.route_table.path
            self._route_dns_keeper = RouteDnsKeeper(route_dns, table, table.parent / "routedns.log")
        self.tls = tls or TlsSettings()
        self.custom_hosts = custom_hosts  # the custom domains to serve now
        self._apply_lock = threading.RLock()
        self._last_routes: list[Route] | None = None
        self.access_log = access_log
        self.access_log_roll_mb = access_log_roll_mb
        self.access_log_keep = access_log_keep
        self.admin_listen = _admin_listen(admin_url)
        self.http_port = http_port
        self.timeout = timeout
        # No kept-alive connections: Caddy restarts its admin server on every /load.
        self._client = httpx.Client(
            timeout=timeout,
            transport=transport,  # tests swap in httpx.MockTransport
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def close(self) -> None:
        self._client.close()

    def build_config(
        self, routes: Iterable[Route], custom_hosts: Iterable[CustomHost] | None = None
    ) -> dict[str, Any]:
        """Caddy's whole JSON config, ordered by host so it compares stably; pure when
        ``custom_hosts`` is given, else it asks the provider for them."""
        if custom_hosts is None:
            custom_hosts = self.custom_hosts()
        by_host: dict[str, Route] = {}
        for route in routes:
            host = route.host.lower()
            if host in by_host:
                raise ValueError(f"two routes for host {host!r}")
            by_host[host] = route
        caddy_routes: list[dict[str, Any]] = [
            {
                "match": [{"host": [host]}],
                "handle": [_handler(by_host[host], self.route_dns)],
                "terminal": True,
            }
            for host in sorted(by_host)
        ]
        custom = _custom_routes(custom_hosts, by_host)
        if custom:
            caddy_routes.append(
                {
                    "match": [{"host": [name for name, _ in custom]}],
                    "handle": [_redirect_to_https(self.tls.https_port)],
                    "terminal": True,
                }
            )
        caddy_routes.append({"handle": [_text_response(404, UNKNOWN_HOST_BODY)]})
        server: dict[str, Any] = {
            "listen": [f":{self.http_port}"],
            # *.localhost would otherwise get certificates from Caddy's CA.
            "automatic_https": {"disable": True},
            "routes": caddy_routes,
        }
        config: dict[str, Any] = {
            # /load replaces the admin section too: keep it where we reach it.
            "admin": {"listen": self.admin_listen},
            "apps": {"http": {"servers": {SERVER_NAME: server}}},
        }
        if custom:
            self._add_https(config, custom)
        if self.access_log is not None:
            # Every request of the servers, whatever its host, goes to the access logger.
            for each in config["apps"]["http"]["servers"].values():
                each["logs"] = {"default_logger_name": ACCESS_LOGGER}
            config["logging"] = _access_logging(
                self.access_log, self.access_log_roll_mb, self.access_log_keep
            )
        return config

    def _add_https(self, config: dict[str, Any], custom: list[tuple[str, Route]]) -> None:
        """The HTTPS server for custom domains, and the tls app that gets their certificates."""
        http = config["apps"]["http"]
        # Where ACME's HTTP-01 and TLS-ALPN-01 challenges arrive, and where redirects point.
        http["http_port"] = self.http_port
        http["https_port"] = self.tls.https_port
        routes = [
            {
                "match": [{"host": [name]}],
                "handle": [_handler(route, self.route_dns)],
                "terminal": True,
            }
            for name, route in custom
        ]
        routes.append({"handle": [_text_response(404, UNKNOWN_HOST_BODY)]})
        http["servers"][TLS_SERVER_NAME] = {
            "listen": [f":{self.tls.https_port}"],
            # Certificates are managed by the tls app below, not guessed from the routes.
            "automatic_https": {"disable": True},
            "tls_connection_policies": [{}],
            "protocols": ["h1", "h2"],
            "routes": routes,
        }
        names = [name for name, _ in custom]
        exact = [n for n in names if not n.startswith("*.")]
        wildcards = [n for n in names if n.startswith("*.")]
        config["apps"]["tls"] = _tls_app(exact, wildcards, self.tls)
        if self.tls.issuer == "internal":
            # Never try to put Caddy's root into the system trust store (needs root).
            config["apps"]["pki"] = {"certificate_authorities": {"local": {"install_trust": False}}}

    def current_config(self) -> Any:
        """What Caddy runs now (``None`` for an empty config)."""
        response = self._request("GET", "/config/")
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise RouterError(f"Caddy admin API returned a config that is not JSON: {exc}") from exc

    def apply(self, routes: Iterable[Route]) -> bool:
        """Push the config for ``routes`` if Caddy runs a different one; True when it pushed."""
        routes = list(routes)
        with self._apply_lock:
            self._last_routes = routes
            if self.route_table is not None:
                self._write_table(routes)
            wanted = json.loads(json.dumps(self.build_config(routes)))
            if _without_instances(self.current_config()) == _without_instances(wanted):
                return False
            self._request("POST", "/load", json=wanted)
            return True

    def routed(self) -> dict[str, tuple[str, ...]]:
        """Each host's instance addresses as last applied (paused hosts have none)."""
        with self._apply_lock:
            routes = self._last_routes or []
        return {r.host.lower(): () if r.paused else r.upstreams for r in routes}

    def keep_route_dns(self) -> None:
        """Start the route responder when none answers, again when it died; cheap when one
        does. It outlives the agent, so Caddy finds instances while the agent restarts."""
        if self._route_dns_keeper is not None:
            self._route_dns_keeper.keep()

    def _write_table(self, routes: list[Route]) -> None:
        answers = {
            route_name(r.host): _ipv4_hosts(r.upstreams) or [] for r in routes if not r.paused
        }
        try:
            self.route_table.write(answers)
        except OSError as exc:
            raise RouterError(f"cannot write the route table: {exc}") from exc

    def refresh(self) -> bool:
        """Apply the last routes again, so a change of custom domains reaches Caddy without
        waiting for the next reconcile pass; False when no routes were applied yet."""
        with self._apply_lock:  # held throughout: newer routes never lose to these
            if self._last_routes is None:
                return False
            return self.apply(self._last_routes)

    def internal_ca_root(self) -> str:
        """The PEM root certificate of Caddy's internal CA (``tls internal``)."""
        response = self._request("GET", "/pki/ca/local")
        try:
            return str(response.json()["root_certificate"])
        except (ValueError, TypeError, KeyError) as exc:
            raise RouterError(f"unexpected answer from Caddy's pki endpoint: {exc}") from exc

    def ping(self) -> bool:
        """Whether the admin API answers at all."""
        try:
            self._request("GET", "/config/")
        except RouterError:
            return False
        return True

    def upstream_requests(self) -> dict[str, int]:
        """In-flight requests per upstream dial address, as Caddy counts them now."""
        response = self._request("GET", "/reverse_proxy/upstreams")
        try:
            entries = response.json() or []
            return {str(e["address"]): int(e.get("num_requests", 0)) for e in entries}
        except (ValueError, TypeError, KeyError) as exc:
            raise RouterError(f"unexpected answer from Caddy's upstreams endpoint: {exc}") from exc

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.admin_url}{path}"
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise RouterError(f"Caddy admin API at {self.admin_url} unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise RouterError(
                f"Caddy admin API {method} {path} failed with HTTP {response.status_code}: "
                f"{_caddy_error(response)}"
            )
        return response


def _caddy_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return response.text.strip()[:500]
