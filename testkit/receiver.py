"""A notification target of a test's own on loopback: takes every POST, answers 204."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records what it is sent, as (headers, body), from ``start`` to ``stop``; it
    starts again on the same ``port`` (a free one unless given), so a test can take it
    down while deliveries are due."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def hosts(self) -> list[str]:
        """The Host header of each request, in order."""
        return [headers.get("Host", "") for headers, _ in self.received]

    def statuses(self, service: str) -> list[str]:
        """The operation statuses the notifications about ``service`` told, in order."""
        details = [json.loads(body)["detail"] for _, body in self.received]
        return [
            d["operationStatus"]
            for d in details
            if d.get("serviceName") == service and "operationStatus" in d
        ]


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A started ``Receiver``, stopped on the way out."""
    receiver = Receiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
