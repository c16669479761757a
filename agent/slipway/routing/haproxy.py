"""The HAProxy data plane (``data_plane: haproxy``): HAProxy carries the plain-HTTP
service routes on ``http_port``; Caddy keeps TLS (custom domains, ingress) on
``https_port`` and every other host on ``http_port`` behind HAProxy.

Why: on this 2-core host Caddy's route costs about 170 µs of CPU per request and
HAProxy's about 43 µs (issue 15's measurements), and on a small host the router's
CPU is taken from the apps. Caddy stays for what HAProxy would need certificates for.

How it is driven, only through its own files and its Runtime API (a unix socket in
``<data_dir>/haproxy``): the config and the map are written at start
(``haproxyconfig.py``); every route change is ``add server``/``enable server``/
``disable server``/``del server`` and ``add map``/``set map``/``del map`` over the
socket, so no change reloads it and a client's kept-alive connection survives every
deployment. In-flight counts come from ``show stat`` (``scur`` + ``qcur``).

HAProxy is started by the agent as a child in a session of its own, like the route
DNS responder (``keeper.py``): it outlives the agent, so the routes keep answering
while the agent restarts, and the next agent finds it answering and uses it.

``HaproxyRouter`` has the Caddy ``Router``'s public methods, with their meaning: the
rest of the agent does not learn which data plane it talks to (``agent.py`` picks).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from ..errors import RouterError
from .admin import AdminAddress, parse_admin
from .caddyconfig import Route
from .haproxyconfig import (
    assign,
    is_pool,
    map_text,
    parse_in_flight,
    parse_map,
    parse_servers,
    plan,
    render_config,
    server_name,
)
from .haproxytraffic import (
    Deltas,
    SampleSocket,
    Served,
    UpstreamServed,
    parse_counters,
    parse_server_counters,
    served,
)
from .keeper import _tail
from .router import Router

log = logging.getLogger("slipway.routing.haproxy")

CADDY_HTTP_SOCKET = "caddy-http.sock"  # Caddy's HTTP server, behind HAProxy
START_SECONDS = 10.0  # how long a started HAProxy has to answer on its socket
# show stat of servers only, and of backends only (proxy -1: all; type 4: servers, 2:
# backends): the whole of it is 125 kB with 500 backends, about 19 ms of HAProxy's
# time, which the scaler asked every second.
STAT_SERVERS = "show stat -1 4 -1"
STAT_BACKENDS = "show stat -1 2 -1"
# Answers the Runtime API gives to a command that did what it was asked.
_DONE = ("", "New server registered.", "Server deleted.")


def caddy_http_socket(caddy_admin: str, directory: Path) -> Path:
    """Where Caddy's HTTP server listens behind HAProxy: beside Caddy's admin socket
    when it has one (``/run/slipway``, a directory Caddy's own user may write, which
    the agent's state dir is not), else in ``directory``."""
    admin = parse_admin(caddy_admin)
    return (admin.socket.parent if admin.socket else Path(directory)) / CADDY_HTTP_SOCKET


def caddy_listen(socket_path: Path) -> str:
    """The socket as Caddy writes a listen address (``unix//path``)."""
    return f"unix/{socket_path}"


class Runtime(Protocol):
    """One Runtime API command in, its answer out (tests: a fake)."""

    def command(self, line: str) -> str: ...


class SocketRuntime:
    """HAProxy's Runtime API on a unix socket: one connection per command."""

    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def command(self, line: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise RouterError(f"HAProxy's Runtime API at {self.path} unreachable: {exc}") from exc
        return b"".join(chunks).decode(errors="replace")


class HaproxyProcess:
    """The HAProxy serving this agent's files: started here when none answers."""

    def __init__(self, directory: Path, config: str, binary: str = "haproxy") -> None:
        self.directory = Path(directory)
        self.config_file = self.directory / "haproxy.cfg"
        self.log_file = self.directory / "haproxy.log"
        self.socket = self.directory / "api.sock"
        self.config = config
        self.binary = binary
        self.runtime = SocketRuntime(self.socket)
        self._process: subprocess.Popen[bytes] | None = None
        self._current: int | None = None  # the pid found serving this config
        self._lock = threading.Lock()

    def answers(self) -> bool:
        return self._pid() is not None

    def check(self, map_file: Path, map_body: str) -> None:
        """Write the config and the map (as ``map_body``) HAProxy would start with;
        ``RouterError`` saying why when it could not: the program is not on this host
        (naming the setting), or it refuses the config."""
        if shutil.which(self.binary) is None:
            raise RouterError(
                f"HAProxy is not installed: no program {self.binary!r} (haproxy_bin) on"
                " this host; install Debian's haproxy (scripts/setup-host) or set"
                " data_plane: caddy"
            )
        _write(self.config_file, self.config)
        _write(map_file, map_body)
        try:
            done = subprocess.run(
                [self.binary, "-c", "-q", "-f", str(self.config_file)],
                capture_output=True,
                text=True,
                check=False,
                timeout=START_SECONDS,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise RouterError(f"cannot run HAProxy ({self.binary}): {exc}") from exc
        if done.returncode != 0:
            raise RouterError(
                f"HAProxy refuses {self.config_file}: {(done.stderr or done.stdout)[-1000:]}"
            )

    def _pid(self) -> int | None:
        """The pid of the HAProxy answering on the socket; None when none answers."""
        try:
            info = self.runtime.command("show info")
        except RouterError:
            return None
        for line in info.splitlines():
            if line.startswith("Pid:") and line[4:].strip().isdigit():
                return int(line[4:])
        return None

    def keep(self, map_file: Path, map_body: str) -> int | None:
        """Make sure HAProxy answers with this config: None if it already does, else
        the pid of the one started now (with the map as ``map_body``); ``RouterError``
        when it cannot. One an earlier agent started with other settings (another
        ``http_port``, pool) is soft-stopped first: its requests in flight finish."""
        with self._lock:
            pid = self._pid()
            if pid is not None and (pid == self._current or self._config_is_ours()):
                self._current = pid
                return None
            if pid is not None:
                self._retire(pid)
            if self._process is not None and self._process.poll() is None:
                log.warning("HAProxy %d does not answer: killing it", self._process.pid)
                self._process.kill()
                self._process.wait()
            self._process = None
            self._current = self._start(map_file, map_body)
            return self._current

    def _config_is_ours(self) -> bool:
        try:
            return self.config_file.read_text() == self.config
        except OSError:
            return False

    def _retire(self, pid: int) -> None:
        """Soft-stop HAProxy ``pid`` (SIGUSR1: it lets go of its ports and socket, and
        ends when its connections have) and wait until the socket is free."""
        log.warning("HAProxy %d runs other settings than %s: replacing it", pid, self.config_file)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + START_SECONDS
        while self._pid() == pid and time.monotonic() < deadline:
            time.sleep(0.05)

    def _start(self, map_file: Path, map_body: str) -> int:
        self.check(map_file, map_body)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        try:
            with open(self.log_file, "ab") as out:
                process = subprocess.Popen(
                    [self.binary, "-db", "-f", str(self.config_file)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    close_fds=True,  # never hold the agent's sockets past the agent
                    start_new_session=True,
                )
        except OSError as exc:
            raise RouterError(f"cannot start HAProxy ({self.binary}): {exc}") from exc
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            if self.answers():
                self._process = process
                log.info("HAProxy %d answers on %s", process.pid, self.socket)
                return process.pid
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
        raise RouterError(
            f"HAProxy did not answer on {self.socket} within {START_SECONDS:g}s (exit code"
            f" {process.returncode}); {self.log_file} ends:\n{_tail(self.log_file)}"
        )


class HaproxyRouter:
    """HAProxy for service hosts on ``http_port``, Caddy (``caddy``, whose HTTP server
    listens on the socket ``caddy_http``) for TLS and every other host."""

    def __init__(
        self,
        caddy: Router,
        *,
        directory: Path,
        caddy_http: Path,
        backends: int,
        binary: str = "haproxy",
        latency_sample: int = 0,
        threads: int = 1,
        runtime: Runtime | None = None,
    ) -> None:
        self.caddy = caddy
        self.caddy_http = Path(caddy_http)
        self.caddy_listen = caddy_listen(caddy_http)
        self.backends = backends
        self.map_file = Path(directory) / "hosts.map"
        self.samples = SampleSocket(Path(directory) / "samples.sock")
        self.latency_sample = latency_sample
        self.process = HaproxyProcess(
            directory,
            render_config(
                http_port=caddy.http_port,
                socket=Path(directory) / "api.sock",
                map_file=self.map_file,
                caddy_http=caddy_http,
                backends=backends,
                samples=self.samples.path,
                sample=latency_sample,
                threads=threads,
            ),
            binary,
        )
        self.runtime: Runtime = runtime or self.process.runtime
        self._lock = threading.RLock()
        self._last_routes: list[Route] | None = None
        self._map_body = ""
        self._hosts: dict[str, str] = {}  # pool backend -> the service host it routes
        # False while HAProxy cannot serve http_port (not installed, will not start):
        # then Caddy serves it, as with data_plane: caddy, so no route goes dark.
        self._serving = True
        self._deltas = Deltas()

    # The Caddy side, as the rest of the agent knows it.
    @property
    def admin(self) -> AdminAddress:
        return self.caddy.admin

    @property
    def admin_url(self) -> str:
        return self.caddy.admin_url

    @property
    def http_port(self) -> int:
        return self.caddy.http_port

    def close(self) -> None:
        self.samples.close()
        self.caddy.close()

    def internal_ca_root(self) -> str:
        return self.caddy.internal_ca_root()

    def keep_route_dns(self) -> None:
        """Keep both children answering: Caddy's route responder and HAProxy. Before
        HAProxy starts, Caddy is brought to a config whose HTTP server has left
        ``http_port`` for its socket (a config of the Caddy data plane holds the port).
        When HAProxy cannot start (not installed, its config refused, it does not
        answer), Caddy takes ``http_port`` back with every route and the ``RouterError``
        says why; the next call tries again. An HAProxy started anew gets its servers
        at once."""
        self.caddy.keep_route_dns()
        self.process.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Caddy makes its socket 0755; the agent's state stays its own (a Caddy of
        # another user, whose socket is not ours to change, keeps its mode).
        with contextlib.suppress(OSError):
            os.chmod(self.caddy_http, 0o600)
        if self.latency_sample:
            try:
                self.samples.open()
            except RouterError as exc:  # latencies lost, routes not
                log.warning("%s", exc.message)
        with self._lock:
            if self._serving and self.process.answers():
                self.process.keep(self.map_file, self._map_body)  # one of other settings?
                return
            try:
                self.process.check(self.map_file, self._map_body)  # before Caddy moves
                self.caddy.listen_on(self.caddy_listen)
                self.caddy.apply(self._last_routes or [])
                started = self.process.keep(self.map_file, self._map_body)
            except RouterError as exc:
                self._serving = False
                self.caddy.listen_on(None)
                with contextlib.suppress(RouterError):  # Caddy's own failure: its message
                    self.caddy.apply(self._last_routes or [])
                raise RouterError(f"{exc.message}; Caddy serves http_port meanwhile") from exc
            self._serving = True
            if started is not None and self._last_routes is not None:
                self._apply_haproxy(self._last_routes)

    def ping(self) -> bool:
        """Whether both Caddy and HAProxy answer."""
        return self.caddy.ping() and self.process.answers()

    def apply(self, routes: Iterable[Route]) -> bool:
        """Bring HAProxy (HTTP side) and Caddy (TLS side) to ``routes``; True when
        HAProxy was told something. Caddy gets them even when HAProxy failed, so a
        dead HAProxy does not hold custom domains' routes back."""
        routes = list(routes)
        with self._lock:
            self._last_routes = routes
            if not self._serving:  # Caddy serves http_port until HAProxy can
                self.caddy.apply(routes)
                return False
            try:
                return self._apply_haproxy(routes)
            finally:
                self.caddy.apply(routes)

    def _apply_haproxy(self, routes: list[Route]) -> bool:
        mapped = parse_map(self._ask(f"show map {self.map_file}"))
        servers = parse_servers(self._ask("show servers state"))
        commands = plan(routes, mapped, servers, map_file=self.map_file, backends=self.backends)
        refused = [c for c in commands if not self._run(c)]
        wanted = assign(routes, mapped, servers, self.backends)
        self._hosts = {backend: host for host, backend in wanted.items()}
        body = map_text(wanted)
        if body != self._map_body:  # what a restarted HAProxy starts from
            _write(self.map_file, body)
            self._map_body = body
        return len(refused) < len(commands)

    def refresh(self) -> bool:
        """Apply the last routes again (custom domains changed: Caddy's side)."""
        with self._lock:
            if self._last_routes is None:
                return False
            return self.apply(self._last_routes)

    def routed(self) -> dict[str, tuple[str, ...]]:
        """Each host's instance addresses as last applied (paused hosts have none)."""
        with self._lock:
            routes = self._last_routes or []
        return {r.host.lower(): () if r.paused else r.upstreams for r in routes}

    def upstream_requests(self) -> dict[str, int]:
        """In-flight requests per instance address: HAProxy's (plain HTTP) plus
        Caddy's (custom domains over HTTPS go from Caddy to the instances)."""
        if not self._serving:
            return self.caddy.upstream_requests()
        flights = parse_in_flight(self._ask(STAT_SERVERS))
        for address, count in self.caddy.upstream_requests().items():
            flights[address] = flights.get(address, 0) + count
        return flights

    def upstream_served(self, since: float) -> dict[str, UpstreamServed]:
        """Per instance address: requests and 5xx since its server was added (HAProxy's
        server counters), and its latencies sampled since ``since`` (monotonic): what a
        rollout compares between revisions. Nothing while Caddy serves http_port."""
        if not self._serving:
            return self.caddy.upstream_served(since)
        counters = parse_server_counters(self._ask(STAT_SERVERS))
        return {
            address: UpstreamServed(
                requests, errors, self.samples.recent(server_name(address), since)
            )
            for address, (requests, errors) in counters.items()
        }

    def set_weight(self, host: str, address: str, weight: int) -> None:
        """Give one instance of ``host``'s route the share ``weight`` (0 to 256; 0: no
        new requests) of its requests, for traffic splitting: HAProxy's ``set weight``,
        no reload. ``RouterError`` when the host or instance is not routed here."""
        if not 0 <= weight <= 256:
            raise RouterError(f"an HAProxy weight is 0 to 256, not {weight}")
        with self._lock:
            backend = next((b for b, h in self._hosts.items() if h == host.lower()), None)
        if backend is None or not is_pool(backend):
            raise RouterError(f"{host} has no instances routed by HAProxy")
        target = f"{backend}/{server_name(address)}"
        answer = self._ask(f"set weight {target} {weight}").strip()
        if answer:
            raise RouterError(f"HAProxy refused the weight of {target}: {answer[:300]}")

    def served(self) -> dict[str, Served]:
        """What each service host got through HAProxy since the last call: requests and
        status classes from its counters, latencies of the sampled requests. The first
        call is the baseline (HAProxy outlives the agent: what came before is not
        counted again). Nothing while Caddy serves http_port: its access log has them."""
        if not self._serving:
            return {}
        counters = parse_counters(self._ask(STAT_BACKENDS))
        with self._lock:
            hosts = {b: h for b, h in self._hosts.items() if is_pool(b)}
        return served(self._deltas.step(counters), self.samples.take(), hosts, self.latency_sample)

    def _ask(self, line: str) -> str:
        return self.runtime.command(line)

    def _run(self, line: str) -> bool:
        """One change; False when HAProxy refused it. A refused ``del server`` is the
        normal case of a server still carrying a connection: it goes at a later apply."""
        answer = self._ask(line).strip()
        if answer in _DONE:
            return True
        if not line.startswith("del server"):
            raise RouterError(f"HAProxy refused {line!r}: {answer[:300]}")
        log.debug("HAProxy: %s: %s (again at the next apply)", line, answer[:200])
        return False


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically (HAProxy may read it at any time)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp.write_text(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        raise RouterError(f"cannot write {path}: {exc}") from exc
