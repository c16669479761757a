"""python311-hello: slipway's example for the python311 runtime, the standard library only.

GET /            "Hello from python311-hello"
GET /version     the Python version it runs on
GET /env/<NAME>  the value of env var NAME (404 when unset)

Listens on $PORT (App Runner sets it; default 8080) and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import os
import platform
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        status, text = 404, "not found"
        if path == "/":
            status, text = 200, "Hello from python311-hello"
        elif path == "/version":
            status, text = 200, platform.python_version()
        elif path.startswith("/env/") and unquote(path[5:]) in os.environ:
            status, text = 200, os.environ[unquote(path[5:])]
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
print(f"python311-hello: listening on port {server.server_port}", flush=True)
server.serve_forever()
