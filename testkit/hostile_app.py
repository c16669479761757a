"""A hostile tenant's app: serves what its attacks got, as JSON.

GET /        "hostile"
GET /health  200
GET /build   what the build's attacks got (written by build_attacks.py at build time)
GET /run?neighbour=HOST:PORT&agent=HOST:PORT   tries, as the running instance:
  connecting to a neighbour's instance and to the agent's API, reading the host's
  secrets directory, a setuid-root copy of python (made at build time), a raw socket.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def connect(target: str) -> str:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
        return "open"
    except OSError as exc:
        return f"refused {exc.errno}"


def run_attacks(query: dict[str, list[str]]) -> dict[str, str]:
    found = {name: connect(query[name][0]) for name in ("neighbour", "agent") if name in query}
    found["uid"] = str(os.getuid())
    found["secrets_dir"] = str(os.path.exists("/etc/slipway/secrets"))
    found["environment"] = json.dumps(dict(os.environ))
    suid = subprocess.run(
        ["/app/suid-python", "-c", "import os; print(os.geteuid())"],
        capture_output=True,
        text=True,
    )
    found["setuid_euid"] = suid.stdout.strip() or suid.stderr.strip()[-200:]
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
        found["raw_socket"] = "opened"
    except OSError as exc:
        found["raw_socket"] = f"refused {exc.errno}"
    return found


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        if url.path == "/run":
            self.reply(json.dumps(run_attacks(parse_qs(url.query))))
        elif url.path == "/build":
            with open("/app/build-attacks.json") as found:
                self.reply(found.read())
        else:
            self.reply("hostile" if url.path == "/" else "ok")

    def reply(self, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    if sys.argv[1:2] == ["build"]:  # at build time: name=host:port ...
        targets = dict(arg.split("=", 1) for arg in sys.argv[2:])
        with open("build-attacks.json", "w") as out:
            json.dump({name: connect(target) for name, target in targets.items()}, out)
    else:
        ThreadingHTTPServer(("", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
