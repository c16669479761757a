"""Caddy, driven only through its admin API: the agent owns Caddy's whole config.

The config is built as plain data (``caddyconfig.py``) and pushed with ``POST /load``
only when it differs from what Caddy reports at ``GET /config/``, so a reconcile
loop can call ``apply`` every few seconds without reloading Caddy. Routes and custom
domains that have not changed since the last apply are not built or compared again
for ``DRIFT_CHECK_SECONDS``: a Caddy that restarted with an empty config gets its
routes back within that time, and an idle host with many services spends nothing on
a config that did not move.

Custom domains come from the provider callable given to the Router (``custom_hosts``);
``refresh`` applies the last routes again when they change.

Instances change without a config load. Each instance publishes its port on its own
loopback address, so a route's instances are one DNS name's A records: Caddy resolves
the route's name (``routedns.route_name``) through slipway's responder (``route_dns``)
at most every ``DNS_REFRESH``, and ``apply`` rewrites the responder's table. A load
would restart Caddy's servers, which closes idle keep-alive connections and loses a
request sent on one at that instant; so ``apply`` loads only when the config differs
in more than the instance addresses (a host added or removed, a pause, a route going
from none to some instances). The static ``upstreams`` beside the dynamic source are
Caddy's fallback while the responder cannot answer: the instances as of the last load.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from ..errors import RouterError
from .admin import parse_admin
from .caddyconfig import (
    ACCESS_LOG_KEEP,
    ACCESS_LOG_ROLL_MB,
    DNS_REFRESH_SECONDS,
    CustomHost,
    Route,
    TlsSettings,
    build_config,
    ipv4_hosts,
    without_instances,
)
from .haproxytraffic import UpstreamServed
from .ingress import Ingress
from .keeper import RouteDnsKeeper
from .routedns import RouteTable, route_name

# When a route table change has reached Caddy everywhere, with a margin.
ROUTE_CHANGE_SECONDS = DNS_REFRESH_SECONDS + 0.5
# How long routes applied unchanged are trusted to be what Caddy runs.
DRIFT_CHECK_SECONDS = 10.0


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
        route_table_gid: int | None = None,
        ingress: Ingress | None = None,
        http_listen: str | None = None,
        private_listen: str | None = None,
    ) -> None:
        # "unix//path" (the default: a socket only root opens) or http://host:port.
        self.admin = parse_admin(admin_url)
        self.admin_url = self.admin.base_url
        # Where Caddy resolves routes' instances, and the table the responder there reads.
        self.route_dns = route_dns
        self.route_table = (
            RouteTable(route_table, route_table_gid) if route_table and route_dns else None
        )
        self._route_dns_keeper: RouteDnsKeeper | None = None
        if self.route_table is not None and route_dns:
            table = self.route_table.path
            self._route_dns_keeper = RouteDnsKeeper(route_dns, table, table.parent / "routedns.log")
        self.tls = tls or TlsSettings()
        self.ingress = ingress or Ingress()  # the agent's own public names
        self.ingress.check()
        self.custom_hosts = custom_hosts  # the custom domains to serve now
        self._apply_lock = threading.RLock()
        self._last_routes: list[Route] | None = None
        # (our config, Caddy's answer) last found in step: the same pair again needs no
        # parsing and comparing (every reconcile pass, with 100 services, a fifth of
        # the idle agent's CPU).
        self._in_step: tuple[str, bytes] | None = None
        # What the last apply found Caddy running, and until when that is trusted.
        self._applied: tuple[list[Route], list[CustomHost]] | None = None
        self._trusted_until = 0.0
        self.access_log = access_log
        self.access_log_roll_mb = access_log_roll_mb
        self.access_log_keep = access_log_keep
        self.admin_listen = self.admin.listen
        self.http_port = http_port
        self.http_listen = http_listen  # where the HTTP server listens, if not http_port
        self.private_listen = private_listen  # where private routes are served, if anywhere
        self.timeout = timeout
        # No kept-alive connections: Caddy restarts its admin server on every /load.
        self._client = httpx.Client(
            timeout=timeout,
            transport=transport or self.admin.transport(),  # tests: httpx.MockTransport
            headers=self.admin.request_headers(),
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def close(self) -> None:
        self._client.close()

    def listen_on(self, http_listen: str | None) -> None:
        """Move the HTTP server to ``http_listen`` (None: ``http_port``) at the next
        apply: behind HAProxy, or on the port itself while HAProxy cannot serve it."""
        with self._apply_lock:
            if http_listen != self.http_listen:
                self.http_listen = http_listen
                self._applied = None  # the next apply loads

    def build_config(
        self, routes: Iterable[Route], custom_hosts: Iterable[CustomHost] | None = None
    ) -> dict[str, Any]:
        """Caddy's whole JSON config with this router's settings; pure when
        ``custom_hosts`` is given, else it asks the provider for them."""
        if custom_hosts is None:
            custom_hosts = self.custom_hosts()
        return build_config(
            routes,
            custom_hosts,
            admin_listen=self.admin_listen,
            http_port=self.http_port,
            tls=self.tls,
            route_dns=self.route_dns,
            access_log=self.access_log,
            access_log_roll_mb=self.access_log_roll_mb,
            access_log_keep=self.access_log_keep,
            ingress=self.ingress,
            http_listen=self.http_listen,
            private_listen=self.private_listen,
        )

    def apply(self, routes: Iterable[Route]) -> bool:
        """Push the config for ``routes`` if Caddy runs a different one; True when it pushed."""
        routes = list(routes)
        with self._apply_lock:
            self._last_routes = routes
            applying = (routes, list(self.custom_hosts()))
            if applying == self._applied and time.monotonic() < self._trusted_until:
                return False
            self._applied = None
            if self.route_table is not None:
                self._write_table(routes)
            text = json.dumps(self.build_config(*applying))
            running = self._request("GET", "/config/").content
            loaded = False
            if self._in_step != (text, running):
                wanted = json.loads(text)
                if without_instances(_parse_config(running)) == without_instances(wanted):
                    self._in_step = (text, running)
                else:
                    self._in_step = None
                    self._request("POST", "/load", json=wanted)
                    self.admin.secure()  # the load made the admin socket anew
                    loaded = True
            self._applied = applying
            self._trusted_until = time.monotonic() + DRIFT_CHECK_SECONDS
            return loaded

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
            route_name(r.host): ipv4_hosts(r.upstreams) or [] for r in routes if not r.paused
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

    def upstream_served(self, since: float) -> dict[str, UpstreamServed]:
        """Requests per instance: none from Caddy, whose access log does not name the
        upstream (a rollout through Caddy advances on time alone, and says so)."""
        return {}

    def served(self) -> dict[str, Any]:
        """Requests counted by the router itself, per host: none with Caddy, whose
        requests are read from its access log (``observe/metrics.py``)."""
        return {}

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.admin_url}{path}"
        try:
            response = self._client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            where = self.admin.socket or self.admin_url
            raise RouterError(f"Caddy admin API at {where} unreachable: {exc}") from exc
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


def _parse_config(body: bytes) -> Any:
    """Caddy's config as its admin API answered it (``None`` for an empty config)."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise RouterError(f"Caddy admin API returned a config that is not JSON: {exc}") from exc
