"""Where Caddy's admin API is, and how to reach it: a unix socket (``unix//path``, the
default) or, for compatibility, ``http://host:port``.

The admin API is unauthenticated: whoever reaches it can stop every service. On TCP
that is every local process (and any request a local process can be tricked into
sending), so it lives on a socket that only root may open (mode 0600, in a 0700
directory). Caddy 2.6 accepts admin requests on a socket only with an empty ``Host``
header (its origin check allows just ``""`` there), which ``request_headers`` gives.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ..errors import RouterError

log = logging.getLogger("slipway.router")

UNIX_PREFIX = "unix/"
DEFAULT_SOCKET = "/run/slipway/caddy-admin.sock"
DEFAULT_ADMIN = f"{UNIX_PREFIX}/{DEFAULT_SOCKET.lstrip('/')}"
SOCKET_MODE = 0o600
# The URL httpx is given for a socket: only its path matters; the Host header is blanked.
SOCKET_BASE_URL = "http://caddy-admin"


@dataclass(frozen=True)
class AdminAddress:
    """One admin address: what Caddy listens on (``listen``, kept in every config pushed)
    and how the agent reaches it (``base_url``, through ``socket`` when set)."""

    listen: str
    base_url: str
    socket: Path | None = None

    def transport(self) -> httpx.BaseTransport | None:
        """httpx's transport for a socket; None: the default TCP one."""
        return httpx.HTTPTransport(uds=str(self.socket)) if self.socket else None

    def request_headers(self) -> dict[str, str]:
        return {"Host": ""} if self.socket else {}

    def secure(self) -> None:
        """Make the socket 0600 (its owner's alone) whatever umask Caddy runs with: a
        umask that would give it 0600 (0177) would also make Caddy's own directories
        unsearchable (0600), so Caddy runs with 0077 and the socket comes out 0700."""
        if self.socket is None:
            return
        try:
            if stat.S_IMODE(os.stat(self.socket).st_mode) != SOCKET_MODE:
                os.chmod(self.socket, SOCKET_MODE)
        except OSError as exc:  # routes still go out; the socket keeps Caddy's umask
            log.warning("cannot make Caddy's admin socket %s 0600: %s", self.socket, exc)


def parse_admin(admin: str) -> AdminAddress:
    """``unix//path`` (Caddy's own notation for a socket) or ``http(s)://host:port``."""
    if admin.startswith(UNIX_PREFIX):
        path = admin[len(UNIX_PREFIX) :]
        if not path.startswith("/") or path.rstrip("/") == "":
            raise RouterError(f"caddy_admin {admin!r}: a socket is written unix//absolute/path")
        return AdminAddress(listen=admin, base_url=SOCKET_BASE_URL, socket=Path(path))
    parts = urlsplit(admin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RouterError(
            f"caddy_admin {admin!r} is neither unix//path nor an http://host:port URL"
        )
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return AdminAddress(listen=f"{host}:{port}", base_url=admin.rstrip("/"))
