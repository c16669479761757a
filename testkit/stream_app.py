"""A test app of long-lived connections, on the standard library only (it runs on
slipway's python base image): a WebSocket echo and a server-sent events stream, each
answer naming the revision (``APP_VERSION``, default 1) that sent it.

GET /health           200 "ok"
GET /ws               WebSocket: every text message comes back as "<revision> <text>"
GET /events?id=S&gated=N
                      server-sent events "<revision> <n>", n = 0, 1, ...; the first N
                      are each sent only once /ack?id=S&n=<n> said the one before
                      arrived (a router that buffered the stream would hold event n
                      back, and event n+1 would never be sent); then one every 0.2 s
GET /ack?id=S&n=K     event K of stream S arrived

Listens on $PORT (default 8080); SIGTERM ends it at once, closing every connection.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

REVISION = os.environ.get("APP_VERSION", "1")
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's
TICK = 0.2  # seconds between free-running events
ACKS: dict[str, int] = {}  # stream id -> the last event acknowledged
ACKED = threading.Condition()


def read_frame(stream: BinaryIO) -> tuple[int, bytes] | None:
    """One client frame (masked, as RFC 6455 has clients send) -> (opcode, payload)."""
    head = stream.read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", stream.read(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", stream.read(8))
    mask = stream.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = stream.read(length)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def frame(opcode: int, payload: bytes) -> bytes:
    """A server frame (unmasked), final."""
    if len(payload) < 126:
        return bytes([0x80 | opcode, len(payload)]) + payload
    return bytes([0x80 | opcode, 126]) + struct.pack("!H", len(payload)) + payload


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each event or echo goes out as it is written

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/health":
            self.reply(200, "ok")
        elif url.path == "/ws":
            self.websocket()
        elif url.path == "/events":
            self.events(query.get("id", ""), int(query.get("gated", "0")))
        elif url.path == "/ack":
            with ACKED:
                ACKS[query.get("id", "")] = int(query.get("n", "-1"))
                ACKED.notify_all()
            self.reply(200, "ok")
        else:
            self.reply(404, "not found")

    def reply(self, status: int, text: str) -> None:
        data = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while (got := read_frame(self.rfile)) is not None:
            opcode, payload = got
            if opcode == 0x8:  # close: answered, then the connection ends
                self.wfile.write(frame(0x8, payload[:2]))
                return
            if opcode == 0x9:
                self.wfile.write(frame(0xA, payload))
            elif opcode == 0x1:
                self.wfile.write(frame(0x1, f"{REVISION} ".encode() + payload))
            self.wfile.flush()

    def events(self, stream: str, gated: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        n = 0
        while True:
            event = f"data: {REVISION} {n}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
            with ACKED:
                if n < gated:
                    ACKED.wait_for(lambda n=n: ACKS.get(stream, -1) >= n)
                else:
                    ACKED.wait(TICK)
            n += 1

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        print(format % args, file=sys.stderr, flush=True)


def main() -> None:
    server = ThreadingHTTPServer(("", int(os.environ.get("PORT", "8080"))), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # connections close with it
    print(f"stream app {REVISION}: listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
