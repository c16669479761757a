"""Caddy, driven only through its admin API: the agent owns Caddy's whole config.

The config is built as plain data (``build_config``) and pushed with ``POST /load``
only when it differs from what Caddy reports at ``GET /config/``, so a reconcile
loop can call ``apply`` every few seconds without reloading Caddy, and a Caddy
that restarted with an empty config gets its routes back on the next pass.

With ``access_log`` set, Caddy writes one JSON line per request of the server to that
file (logger ``slipway-access``, rolled by size, rolled files not gzipped so a reader can
finish one after a roll); ``observe/metrics.py`` reads it. Those lines are kept out of
Caddy's default log. Checked against Caddy 2.6.2.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .errors import RouterError

SERVER_NAME = "slipway"

# A request that arrives while instances are being switched waits for a healthy
# upstream instead of failing at once.
TRY_DURATION = "5s"
TRY_INTERVAL = "250ms"
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


def _text_response(status: int, body: str) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"]},
        "body": body,
    }


def _proxy(upstreams: Iterable[str]) -> dict[str, Any]:
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": dial} for dial in upstreams],
        "load_balancing": {
            "selection_policy": {"policy": "round_robin"},
            "try_duration": TRY_DURATION,
            "try_interval": TRY_INTERVAL,
        },
        "health_checks": {"passive": {"fail_duration": FAIL_DURATION, "max_fails": MAX_FAILS}},
    }


def _handler(route: Route) -> dict[str, Any]:
    if route.paused:
        return _text_response(503, PAUSED_BODY)
    upstreams = sorted(set(route.upstreams))
    if not upstreams:
        return _text_response(503, UNAVAILABLE_BODY)
    return _proxy(upstreams)


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
    ) -> None:
        self.admin_url = admin_url.rstrip("/")
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

    def build_config(self, routes: Iterable[Route]) -> dict[str, Any]:
        """Caddy's whole JSON config; pure and ordered by host so it compares stably."""
        by_host: dict[str, Route] = {}
        for route in routes:
            host = route.host.lower()
            if host in by_host:
                raise ValueError(f"two routes for host {host!r}")
            by_host[host] = route
        caddy_routes: list[dict[str, Any]] = [
            {
                "match": [{"host": [host]}],
                "handle": [_handler(by_host[host])],
                "terminal": True,
            }
            for host in sorted(by_host)
        ]
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
        if self.access_log is not None:
            # Every request of the server, whatever its host, goes to the access logger.
            server["logs"] = {"default_logger_name": ACCESS_LOGGER}
            config["logging"] = _access_logging(
                self.access_log, self.access_log_roll_mb, self.access_log_keep
            )
        return config

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
        wanted = json.loads(json.dumps(self.build_config(routes)))
        if self.current_config() == wanted:
            return False
        self._request("POST", "/load", json=wanted)
        return True

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
