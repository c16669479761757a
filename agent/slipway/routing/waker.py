"""The waker: where an idle service's route leads (scale to zero, ``idle.py``).

HAProxy answers 503 at once for a backend without servers, and Caddy for a route
without upstreams, so an idle service's route is not left empty: its one upstream is
this listener in the agent, on the instance network's own address and the instances'
port (an A record for Caddy's route DNS, a server for HAProxy, like any instance). A
request arriving here is held, not refused: ``wake(host)`` starts the service's
instance through the operations machinery and gives a future of its address; once it
is healthy the held requests are proxied to it, while the route moves to the
instance for those that follow. At most ``hold_max`` requests wait on one wake; the
next ones, a wake that fails or one that takes longer than ``timeout``, are answered
503 with ``Retry-After``.

A request's body is not read while it waits (the client's sends wait in the socket):
nothing is buffered, whatever its size. WebSocket upgrades are proxied as plain
requests: an idle service's first WebSocket client is answered by the app, but its
upgrade is not carried (it reconnects once the service is awake).
"""

from __future__ import annotations

import http.client
import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import RouterError, SlipwayError
from ..idle import WakeLimits

log = logging.getLogger("slipway.waker")

RETRY_AFTER = 5  # seconds a refused client is told to wait: about one cold start
CHUNK = 65536
# Headers of one connection, not of the request (RFC 9110 7.6.1), and the body's framing,
# which the waker sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_PORT = re.compile(r":\d+$")

Wake = Callable[[str], "Future[str]"]


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


def request_host(header: str) -> str:
    """The host a request names, without its port, lower case."""
    return _PORT.sub("", header.strip()).lower()


class Waker:
    """Holds requests for idle services until ``wake`` gives an instance's address."""

    def __init__(self, addresses: list[str], wake: Wake, limits: WakeLimits) -> None:
        """``addresses``: where it may listen, the first free one taken at ``start``."""
        limits.check()
        self.addresses = addresses
        self.address = addresses[0]
        self.wake = wake
        self.limits = limits
        self._lock = threading.Lock()
        self._held: dict[Future[str], int] = {}  # requests waiting on each wake
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def hold(self, host: str) -> str | Refusal:
        """The address to send a request for ``host`` to, once its service is awake, or
        why it is refused."""
        try:
            future = self.wake(host)
        except SlipwayError as exc:
            return Refusal(503, exc.message)
        with self._lock:
            held = self._held.get(future, 0)
            if held >= self.limits.hold_max and not future.done():
                return Refusal(
                    503,
                    f"{host} is waking and already holds {held} requests"
                    f" (wake_hold_max {self.limits.hold_max})",
                )
            self._held[future] = held + 1
        try:
            return future.result(timeout=self.limits.timeout)
        except FutureTimeout:
            return Refusal(
                503, f"{host} did not wake within {self.limits.timeout:g}s (wake_timeout)"
            )
        except SlipwayError as exc:
            return Refusal(503, f"{host} could not wake: {exc.message}")
        finally:
            with self._lock:
                left = self._held.pop(future) - 1
                if left:
                    self._held[future] = left

    def start(self) -> None:
        """Listen on the first of ``addresses`` that is free (another agent sharing the
        instance network may hold one)."""
        refusals = []
        for address in self.addresses:
            host, _, port = address.rpartition(":")
            try:
                self._server = _Server((host, int(port)), _Handler, self)
            except OSError as exc:
                refusals.append(f"{address}: {exc.strerror or exc}")
                continue
            self.address = address
            break
        else:
            raise RouterError(f"the waker cannot listen: {'; '.join(refusals)}")
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="slipway-waker", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a burst on an idle service arrives all at once

    def __init__(self, address: tuple[str, int], handler: Any, waker: Waker) -> None:
        self.waker = waker
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method is held and proxied alike
            return self._serve
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("waker: " + format, *args)

    def _serve(self) -> None:
        self.close_connection = True  # one request per connection: the route moves on
        answer = self.server.waker.hold(request_host(self.headers.get("Host", "")))
        if isinstance(answer, Refusal):
            self._refuse(answer)
            return
        self._answering = False
        try:
            self._proxy(answer)
        except (OSError, http.client.HTTPException) as exc:
            log.warning("waker: proxying to %s failed: %s", answer, exc)
            if not self._answering:  # else the client sees the answer cut short
                self._refuse(Refusal(502, f"the woken instance at {answer} failed: {exc}"))

    def _refuse(self, refusal: Refusal) -> None:
        body = (refusal.message + "\n").encode()
        self.send_response(refusal.status)
        self.send_header("Retry-After", str(RETRY_AFTER))
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _proxy(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        upstream = http.client.HTTPConnection(
            host, int(port), timeout=self.server.waker.limits.timeout
        )
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            length = self.headers.get("Content-Length")
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            body: Iterator[bytes] | None = None
            if length is not None:
                headers["Content-Length"] = length
                body = self._read_exactly(int(length))
            elif chunked:
                body = self._read_chunked()
            upstream.request(
                self.command, self.path, body=body, headers=headers, encode_chunked=chunked
            )
            response = upstream.getresponse()
            self._answering = True
            self.send_response_only(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP or key.lower() == "content-length":
                    self.send_header(key, value)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                while data := response.read(CHUNK):
                    self.wfile.write(data)
        finally:
            upstream.close()

    def _read_exactly(self, length: int) -> Iterator[bytes]:
        while length > 0:
            data = self.rfile.read(min(CHUNK, length))
            if not data:
                return
            length -= len(data)
            yield data

    def _read_chunked(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailers, up to the blank line
                    pass
                return
            yield from self._read_exactly(size)
            self.rfile.readline()  # the CRLF after the chunk
