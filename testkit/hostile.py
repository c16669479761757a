"""Targets a hostile tenant attacks, for the tests that prove it fails: servers of the
test's own at the cloud metadata address and on all of the host's addresses, a probe
run inside a container, and what a refusal by slipway's fence looks like.

The fence refuses with icmp-admin-prohibited, so a refused attempt fails at once with
EHOSTUNREACH (``FENCED``), never ECONNREFUSED (nothing listening) or a timeout.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from testkit.harness import wait_for

METADATA = "169.254.169.254"
# The interface that holds the metadata address for the test: one per xdist worker.
METADATA_LINK = f"slipway-md{os.environ.get('PYTEST_XDIST_WORKER', 'gw0').removeprefix('gw')}"
FENCED = f"refused {errno.EHOSTUNREACH}"

# Run inside a container: connect, say how it went.
PROBE = """
import socket, sys
for target in sys.argv[1:]:
    name, host, port = target.split(",")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
        print("PROBE", name, "open", flush=True)
    except OSError as exc:
        print("PROBE", name, "refused", exc.errno, flush=True)
"""


class Listener:
    """A TCP server on all of the host's addresses that accepts and counts."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("0.0.0.0", 0))
        self.port = self.sock.getsockname()[1]
        self.peers: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            conn.close()

    def answers(self, host: str) -> bool:
        """Connect from the host to ``host`` at the listener's port; True once accepted."""
        before = len(self.peers)
        with socket.create_connection((host, self.port), timeout=5):
            wait_for(lambda: len(self.peers) > before, 10, f"the listener to accept {host}")
        return True

    def close(self) -> None:
        self.sock.close()


class MetadataHandler(BaseHTTPRequestHandler):
    peers: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.peers.append(self.client_address[0])
        body = b"ami-id\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # a notification the agent should never have sent counts too

    def log_message(self, *args: object) -> None:
        pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def container_network(container) -> tuple[str, str, str]:
    """``(network, container address, gateway)`` of a container on one network."""
    container.reload()
    ((name, settings),) = container.attrs["NetworkSettings"]["Networks"].items()
    return name, settings["IPAddress"], settings["Gateway"]


def probe_from(container, *targets: tuple[str, str, int]) -> dict[str, str]:
    argv = [f"{name},{host},{port}" for name, host, port in targets]
    out = container.exec_run(["python3", "-c", PROBE, *argv]).output.decode()
    return parse_probes(out)


def parse_probes(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        _, marker, rest = line.partition("PROBE ")
        if marker:
            name, _, result = rest.strip().partition(" ")
            found[name] = result
    return found


def host_answers(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=5):
        return True


@contextlib.contextmanager
def metadata_server() -> Iterator[ThreadingHTTPServer]:
    """An HTTP server of ours at 169.254.169.254 (a free port), on an interface of its
    own; a bridge stands in for a dummy interface where the kernel has no dummy module."""
    _ip("link", "del", METADATA_LINK, check=False)  # left by an interrupted run
    if _ip("link", "add", METADATA_LINK, "type", "dummy", check=False).returncode:
        _ip("link", "add", METADATA_LINK, "type", "bridge")
    try:
        _ip("addr", "add", f"{METADATA}/32", "dev", METADATA_LINK)
        _ip("link", "set", METADATA_LINK, "up")
        handler = type("Handler", (MetadataHandler,), {"peers": []})
        server = ThreadingHTTPServer((METADATA, 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()
    finally:
        _ip("link", "del", METADATA_LINK, check=False)
