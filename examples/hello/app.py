"""slipway's example app: a tiny web server on the standard library only.

GET /            "Hello from slipway!" plus GREETING when that env var is set
GET /env/<NAME>  the value of env var NAME (404 when unset)
GET /health      200 "ok"
GET /slow?ms=N   sleeps N milliseconds (at most 60000), then answers
FAIL_EVERY=N     every N-th request but /health answers 500 (a bad revision, for tests)

Listens on $PORT (default 8080), logs one line per request to stdout and
shuts down cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

INSTANCE = socket.gethostname()
FAIL_EVERY = int(os.environ.get("FAIL_EVERY") or 0)
_served = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    server_version = "slipway-hello/1.0"
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; without this, Nagle's algorithm and the
    # peer's delayed ACK hold every keep-alive answer back by ~40 ms.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        path = url.path
        if FAIL_EVERY and path != "/health" and next(_served) % FAIL_EVERY == 0:
            self.reply(500, "failing on purpose (FAIL_EVERY)")
            return
        if path == "/":
            body = "Hello from slipway!"
            greeting = os.environ.get("GREETING")
            if greeting is not None:
                body += f" GREETING={greeting}"
            self.reply(200, body)
        elif path == "/health":
            self.reply(200, "ok")
        elif path.startswith("/env/") and len(path) > len("/env/"):
            name = unquote(path[len("/env/") :])
            value = os.environ.get(name)
            if value is None:
                self.reply(404, f"{name} is not set")
            else:
                self.reply(200, value)
        elif path == "/slow":
            try:
                ms = int(parse_qs(url.query).get("ms", ["0"])[0])
            except ValueError:
                self.reply(400, "ms must be an integer")
                return
            ms = max(0, min(ms, 60_000))
            time.sleep(ms / 1000)
            self.reply(200, f"slept {ms} ms")
        else:
            self.reply(404, "not found")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def reply(self, status: int, text: str) -> None:
        data = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Instance", INSTANCE)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        code = getattr(code, "value", code)
        line = (
            f'{self.address_string()} "{self.requestline}" {code} '
            f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n"
        )
        # One write per line: print() writes text and newline apart, and two requests'
        # lines would interleave.
        sys.stdout.write(line)
        sys.stdout.flush()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        print(format % args, file=sys.stderr, flush=True)


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("", port), Handler)
    server.daemon_threads = True

    def stop(signum: int, _frame: object) -> None:
        print(f"received {signal.Signals(signum).name}, shutting down", flush=True)
        # shutdown() blocks until serve_forever() returns: call it off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"hello: listening on port {port}", flush=True)
    server.serve_forever()
    server.server_close()
    print("hello: stopped", flush=True)


if __name__ == "__main__":
    main()
