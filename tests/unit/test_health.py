"""probe and until_healthy against a tiny in-process HTTP server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from slipway.errors import HealthCheckFailed
from slipway.health import probe, probe_tcp_many, until_healthy


class App:
    """Answers each GET with the next status of ``statuses`` (the last one repeats)."""

    def __init__(self) -> None:
        self.statuses: list[int] = [200]
        self.hits = 0

    def next_status(self) -> int:
        self.hits += 1
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@pytest.fixture
def app() -> Iterator[tuple[App, int]]:
    state = App()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            status = state.next_status()
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield state, server.server_address[1]
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(port: int, **kwargs: object) -> None:
    options: dict = {
        "protocol": "HTTP",
        "path": "/health",
        "interval": 0.02,
        "timeout": 1,
        "healthy_threshold": 1,
        "unhealthy_threshold": 2,
        "deadline": 1.0,
    }
    options.update(kwargs)
    for pause in until_healthy("127.0.0.1", port, **options):
        time.sleep(pause)


@pytest.mark.parametrize(("status", "ok"), [(200, True), (204, True), (302, True), (404, False)])
def test_http_probe_status(app: tuple[App, int], status: int, ok: bool) -> None:
    state, port = app
    state.statuses = [status]
    healthy, detail = probe("127.0.0.1", port, "HTTP", "/health", 1)
    assert healthy is ok
    assert str(status) in detail


@pytest.mark.parametrize("status", [500, 503])
def test_http_probe_server_error(app: tuple[App, int], status: int) -> None:
    state, port = app
    state.statuses = [status]
    assert probe("127.0.0.1", port, "HTTP", "health", 1) == (
        False,
        f"HTTP GET /health on 127.0.0.1:{port} returned {status}",
    )


def test_tcp_probe(app: tuple[App, int]) -> None:
    _, port = app
    assert probe("127.0.0.1", port, "tcp", "/", 1)[0] is True
    ok, detail = probe("127.0.0.1", free_port(), "TCP", "/", 1)
    assert not ok
    assert "refused" in detail.lower()


def test_http_probe_nothing_listening() -> None:
    ok, detail = probe("127.0.0.1", free_port(), "HTTP", "/", 1)
    assert not ok
    assert "ConnectionRefusedError" in detail


def test_unknown_protocol() -> None:
    with pytest.raises(ValueError):
        probe("127.0.0.1", 1, "UDP", "/", 1)


def test_healthy_after_threshold_successes(app: tuple[App, int]) -> None:
    state, port = app
    state.statuses = [200]
    check(port, healthy_threshold=3)
    assert state.hits == 3


def test_boot_failures_only_count_toward_deadline(app: tuple[App, int]) -> None:
    state, port = app
    state.statuses = [503] * 10 + [200]  # more failures than unhealthy_threshold
    check(port, unhealthy_threshold=2)
    assert state.hits == 11


def test_failures_after_first_success_fail_it(app: tuple[App, int]) -> None:
    state, port = app
    state.statuses = [200, 500, 500, 200]
    with pytest.raises(HealthCheckFailed, match="2 times in a row.*returned 500"):
        check(port, healthy_threshold=3, unhealthy_threshold=2)


def test_deadline_gives_last_detail(app: tuple[App, int]) -> None:
    state, port = app
    state.statuses = [503]
    started = time.monotonic()
    with pytest.raises(HealthCheckFailed, match="after 0.2s.*returned 503"):
        check(port, deadline=0.2)
    assert time.monotonic() - started < 1


def test_nothing_listening_until_deadline() -> None:
    with pytest.raises(HealthCheckFailed, match="TCP connect"):
        check(free_port(), protocol="TCP", deadline=0.1)


def test_dead_instance_fails_at_once(app: tuple[App, int]) -> None:
    state, port = app
    state.statuses = [503]
    alive = iter([True, True, False])
    started = time.monotonic()
    with pytest.raises(HealthCheckFailed, match="stopped.*returned 503"):
        check(port, deadline=30, is_alive=lambda: next(alive))
    assert time.monotonic() - started < 1
    assert state.hits == 2


def test_tcp_probe_peer_that_hangs_up_is_down() -> None:
    """What docker-proxy does for a published port whose container no longer listens."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        ok, detail = probe("127.0.0.1", port, "TCP", "/", timeout=1)
        assert not ok
        assert "closed at once" in detail
        thread.join(5)
    finally:
        listener.close()


def test_tcp_probes_at_once_tell_up_from_hung_up_from_refused() -> None:
    holding = socket.create_server(("127.0.0.1", 0))  # accepts and keeps the connection
    hanging_up = socket.create_server(("127.0.0.1", 0))  # accepts and closes at once

    def hang_up() -> None:
        conn, _ = hanging_up.accept()
        conn.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        targets = [
            ("127.0.0.1", holding.getsockname()[1], 1.0),
            ("127.0.0.1", hanging_up.getsockname()[1], 1.0),
            ("127.0.0.1", free_port(), 1.0),  # nothing listens
            ("127.0.0.1", holding.getsockname()[1], 1.0),
        ]
        assert probe_tcp_many(targets) == [True, False, False, True]
        assert probe_tcp_many([]) == []
        thread.join(5)
    finally:
        holding.close()
        hanging_up.close()
