"""Caddy's admin address: a unix socket by default (only root opens it), http:// still
accepted; over a socket the Router sends the empty Host that Caddy 2.6 requires."""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.config import Settings
from slipway.errors import RouterError
from slipway.routing.admin import DEFAULT_ADMIN, parse_admin
from slipway.routing.router import Route, Router


def test_default_is_a_socket() -> None:
    assert Settings().caddy_admin == DEFAULT_ADMIN == "unix//run/slipway/caddy-admin.sock"
    admin = parse_admin(DEFAULT_ADMIN)
    assert admin.socket == Path("/run/slipway/caddy-admin.sock")
    assert admin.listen == DEFAULT_ADMIN  # what Caddy is told to keep after a load
    assert admin.request_headers() == {"Host": ""}


def test_http_is_still_accepted() -> None:
    admin = parse_admin("http://localhost:2019/")
    assert (admin.listen, admin.base_url, admin.socket) == (
        "localhost:2019",
        "http://localhost:2019",
        None,
    )
    assert admin.transport() is None and admin.request_headers() == {}


@pytest.mark.parametrize("bad", ["unix/relative.sock", "unix//", "localhost:2019", "ftp://x"])
def test_bad_admin_addresses_are_refused(bad: str) -> None:
    with pytest.raises(RouterError, match="caddy_admin"):
        parse_admin(bad)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def fake_caddy(tmp_path: Path) -> Iterator[tuple[Path, list[tuple[str, str, str | None]]]]:
    """A socket that answers like Caddy's admin: 403 unless Host is empty."""
    seen: list[tuple[str, str, str | None]] = []
    path = tmp_path / "admin.sock"
    config: dict = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            host = self.headers.get("Host")
            seen.append((self.command, self.path, host))
            if host != "":
                self.send_response(403)
                self.end_headers()
                return
            if self.command == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                config.update(json.loads(self.rfile.read(length)))
                os.chmod(path, 0o666)  # as a Caddy with a loose umask would make it
            body = json.dumps(config).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

        def address_string(self) -> str:
            return "socket"

    server = _Server(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path, seen
    server.shutdown()
    server.server_close()


def test_router_talks_over_the_socket_and_keeps_it_root_only(fake_caddy) -> None:
    path, seen = fake_caddy
    router = Router(f"unix/{path}", 8080)
    try:
        assert router.ping()
        assert router.apply([Route("a.localhost", ("127.0.0.1:1",))]) is True
    finally:
        router.close()
    assert [(m, p) for m, p, _ in seen] == [
        ("GET", "/config/"),
        ("GET", "/config/"),
        ("POST", "/load"),
    ]
    assert {host for _, _, host in seen} == {""}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_unreachable_socket_names_it(tmp_path: Path) -> None:
    router = Router(f"unix/{tmp_path}/none.sock", 8080)
    with pytest.raises(RouterError, match="none.sock"):
        router.apply([])
    assert router.ping() is False


def test_a_socket_that_cannot_be_restricted_does_not_stop_routing(tmp_path: Path, caplog) -> None:
    admin = parse_admin(f"unix/{tmp_path}/gone.sock")
    admin.secure()  # no socket to chmod: said, not raised
    assert "cannot make Caddy's admin socket" in caplog.text
