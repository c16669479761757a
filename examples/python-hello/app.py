"""python-hello: slipway's managed-runtime example (python3), standard library + humanize.

GET /            "Hello from python-hello"
GET /env/<NAME>  the value of env var NAME (404 when unset)
GET /uptime      how long the app has been up, in words (humanize: the dependency)
GET /health      200 "ok"

Listens on $PORT (App Runner sets it; default 8080) and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import humanize

STARTED = time.monotonic()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/":
            self.reply(200, "Hello from python-hello")
        elif path == "/health":
            self.reply(200, "ok")
        elif path == "/uptime":
            up = timedelta(seconds=time.monotonic() - STARTED)
            self.reply(200, f"up {humanize.naturaldelta(up)}")
        elif path.startswith("/env/") and len(path) > len("/env/"):
            name = unquote(path[len("/env/") :])
            value = os.environ.get(name)
            self.reply(404, f"{name} is not set") if value is None else self.reply(200, value)
        else:
            self.reply(404, "not found")

    def reply(self, status: int, text: str) -> None:
        data = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"python-hello: listening on port {port}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
