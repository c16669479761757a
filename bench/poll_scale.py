"""What tracking many repositories costs the agent: the real Poller and check_source
polling N git repositories (default 1,000) every 60 s, for a few minutes.

Usage: .venv/bin/python bench/poll_scale.py [--repos N] [--interval S] [--minutes M]
       [--server keepalive|wsgiref] [--variant pooled|fresh ...] [--record]

The repositories are served over smart HTTP on loopback by a SEPARATE process (so only
the poller's own cost is counted): a few real bare repositories, each served under many
names through dulwich's DictBackend. ``keepalive`` serves HTTP/1.1 and keeps connections
open, as GitHub does; ``wsgiref`` (the tests' GitServer) closes every connection.

Variants: ``pooled`` is GitSource(reuse_connections=True), what the agent polls with: one
urllib3 pool for all polls, so a poll reuses a kept-alive connection; ``fresh`` is a new
pool (and so a new connection) per poll, as GitSource does for one-off calls.

Measured for this process only: CPU (``time.process_time``) as % of one core over the
run, from start() (so the first interval's spread-out first polls are in it), RSS at the
end and its peak (/proc/self/status VmRSS, VmHWM), polls, errors.
--record appends the table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from common import record

ROOT = Path(__file__).resolve().parents[1]

REAL_REPOS = 10  # distinct repositories behind the N names
GOAL = 5.0  # % of one core for 1,000 repositories at 60 s


# -- the git server (child process) ----------------------------------------------------


def serve(root: Path, repos: int, kind: str) -> None:
    """Child process: serve ``repos`` names and print the port, then run until killed."""
    from testkit.gitserver import GitServer

    server = GitServer(root, start=(kind == "wsgiref"))
    for i in range(REAL_REPOS):
        sha = server.create_repo(f"base{i}", {"app.py": f"print({i})\n", "README": "bench\n"})
        server.tag(f"base{i}", "v1.0.0", sha)
    backend = server._backend  # the helper's DictBackend: extra names for the same repos
    for i in range(repos):
        backend.repos[f"/r{i:05d}"] = server.repo(f"base{i % REAL_REPOS}")
    if kind == "wsgiref":
        print(server.port, flush=True)
        threading.Event().wait()
        return
    from dulwich.web import make_wsgi_chain

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _keep_alive_handler(make_wsgi_chain(backend)))
    httpd.daemon_threads = True
    print(httpd.server_port, flush=True)
    httpd.serve_forever()


def _keep_alive_handler(app: Any) -> type[BaseHTTPRequestHandler]:
    """A tiny HTTP/1.1 WSGI host that keeps connections open, as GitHub's front does.

    wsgiref answers one request per connection, and uvicorn's WSGI adapter lacks the
    ``write()`` callable dulwich's web app uses, so the bench brings its own: the body is
    buffered (ref advertisements are small) and sent with a Content-Length.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            environ = {
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": str(self.server.server_port),
                "SERVER_PROTOCOL": self.request_version,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(length),
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(self.rfile.read(length)),
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": True,
                "wsgi.multiprocess": False,
                "wsgi.run_once": False,
            }
            for name, value in self.headers.items():
                environ["HTTP_" + name.upper().replace("-", "_")] = value
            body: list[bytes] = []
            status: list[Any] = []

            def start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
                status[:] = [code, headers]
                return body.append

            result = app(environ, start_response)
            try:
                body.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            data = b"".join(body)
            code, headers = status
            self.send_response(int(code[:3]), code[4:])
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

    return Handler


def start_server(root: Path, repos: int, kind: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(root), "--repos", str(repos), "--server", kind],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip():
        process.kill()
        raise RuntimeError("the git server did not start")
    port = int(line)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the git server does not answer")


# -- the poller (this process) ----------------------------------------------------------


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB: VmRSS and VmHWM.

    Not getrusage's ru_maxrss: Linux updates that high-water mark lazily, so it can read
    below the current RSS.
    """
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def run(port: int, repos: int, interval: float, minutes: float, variant: str) -> dict[str, float]:
    from slipway.errors import SlipwayError
    from slipway.sources.git import GitSource
    from slipway.sources.registry import RegistryClient
    from slipway.triggers import Found, Watch
    from slipway.triggers.poll import Poller, check_source

    watches = [
        Watch(
            key=f"git|r{i:05d}|main",
            kind="git",
            location=f"http://127.0.0.1:{port}/r{i:05d}",
            ref="main",
            track_tags=None,
            interval=interval,
            service_ids=(f"svc{i}",),
        )
        for i in range(repos)
    ]
    counts = {"polls": 0, "found": 0, "errors": 0}
    lock = threading.Lock()
    git = GitSource(timeout=10, reuse_connections=(variant == "pooled"))
    check = check_source(git, RegistryClient())
    errors: list[str] = []

    def counted(watch: Watch) -> Found:
        with lock:
            counts["polls"] += 1
        return check(watch)

    def on_found(watch: Watch, found: Found) -> None:
        with lock:
            counts["found"] += 1

    def on_error(watch: Watch, exc: SlipwayError, retry_in: float) -> None:
        with lock:
            counts["errors"] += 1
            if len(errors) < 3:
                errors.append(exc.message)

    poller = Poller(lambda: watches, counted, on_found, on_error)
    cpu0, wall0 = time.process_time(), time.monotonic()
    poller.start()
    time.sleep(minutes * 60)
    cpu1, wall1 = time.process_time(), time.monotonic()
    polls = counts["polls"]
    poller.stop()
    git.close()
    current, peak = rss_mb()
    for message in errors:
        print(f"  error: {message}", file=sys.stderr)
    seconds = wall1 - wall0
    return {
        "polls": polls,
        "found": counts["found"],
        "errors": counts["errors"],
        "seconds": seconds,
        "cpu_pct": 100 * (cpu1 - cpu0) / seconds,
        "cpu_ms_per_poll": 1000 * (cpu1 - cpu0) / max(polls, 1),
        "rss": current,
        "rss_peak": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between polls")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of each run")
    parser.add_argument("--server", choices=("keepalive", "wsgiref"), default="keepalive")
    parser.add_argument("--variant", action="append", choices=("pooled", "fresh"))
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.repos, args.server)
        return
    sys.path.insert(0, str(ROOT / "agent"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="slipway-bench-poll-") as tmp:
        process, port = start_server(Path(tmp), args.repos, args.server)
        try:
            for variant in args.variant or ["pooled"]:
                print(
                    f"{variant}: {args.repos} repositories every {args.interval:.0f}s"
                    f" for {args.minutes} min ...",
                    file=sys.stderr,
                )
                rows.append((variant, run(port, args.repos, args.interval, args.minutes, variant)))
        finally:
            process.terminate()
            process.wait(10)
    lines = [
        f"### Polling {args.repos} repositories every {args.interval:.0f} s,"
        f" {time.strftime('%Y-%m-%d')}: {args.minutes:g} min per variant,"
        f" {args.server} git server in another process, {os.cpu_count()} cores",
        "",
        "| variant | polls | polls/s | errors | CPU % of a core | CPU ms/poll |"
        " RSS MB | peak RSS MB | goal (<5%) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for variant, r in rows:
        goal = GOAL * (args.repos / 1000) * (60 / args.interval)
        lines.append(
            f"| {variant} | {r['polls']:.0f} | {r['polls'] / r['seconds']:.1f} |"
            f" {r['errors']:.0f} | {r['cpu_pct']:.2f} | {r['cpu_ms_per_poll']:.2f} |"
            f" {r['rss']:.1f} | {r['rss_peak']:.1f} |"
            f" {'met' if r['cpu_pct'] < goal else 'missed'} |"
        )
    table = "\n".join(lines)
    print()
    print(table)
    if args.record:
        record(
            "bench/poll_scale.py",
            table,
            "The real `Poller` and `check_source` (ls-remote per poll over smart\n"
            "HTTP) tracking many repositories; the git server runs in another\n"
            "process, so the CPU and RSS are the agent side's only. Goal: 1,000\n"
            "repositories at 60 s under 5% of one core. pooled: one urllib3 pool kept\n"
            "across polls (what the agent does); fresh: a new pool and connection per\n"
            "poll.\n",
        )


if __name__ == "__main__":
    main()
