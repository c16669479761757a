"""HAProxy's side of the data plane as plain data: its config file, and the Runtime API
commands that bring a running HAProxy from what it serves to the routes wanted.

Why this shape: HAProxy cannot add a backend without a reload, and a reload is what
the data plane is here to avoid (it would cost a request on a kept-alive connection
now and then). So the config is fixed at start: a frontend on ``http_port`` that picks
its backend from the Host header through a map file, a pool of ``backends`` empty
backends (``s0``, ``s1``, ...), three that answer by themselves (paused, not available)
or pass to Caddy (every other host: custom domains' redirects to HTTPS, ACME's
challenges, the 404 for unknown hosts). A service's host is given a free pool backend
in the map, and its instances are servers added to that backend at runtime. Every
change (``plan``) is then a map entry or a server, never a reload.

``plan`` is a pure function of the routes and of what HAProxy reports (``show map``,
``show servers state``), so it converges from any state: an HAProxy restarted with an
empty pool gets its servers back at the next apply. Checked against HAProxy 2.6.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequest, RouterError
from .caddyconfig import PAUSED_BODY, UNAVAILABLE_BODY, Route
from .haproxytraffic import LOG_FORMAT

DATA_PLANES = ("caddy", "haproxy")
POOL_PREFIX = "s"  # pool backends are s0, s1, ...
PAUSED = "b_paused"
UNAVAILABLE = "b_unavailable"
FALLBACK = "b_caddy"  # every host that is not a service's: Caddy's HTTP server
# A request that finds its instance refusing (one being replaced) is sent to another.
RETRIES = 3
# A server added at runtime keeps no idle connection unless told (2.6 gives it neither
# the pool size nor the purge delay of a configured one): without these, every request
# opened a new connection to its instance, and slipway's route cost 3x bare HAProxy's
# CPU per request, at a third of its req/s (bench/router.py, issue 15).
SERVER_OPTIONS = "pool-max-conn -1 pool-purge-delay 5s"
# Long-lived streams. A WebSocket (an upgraded connection) is bounded by ``timeout
# tunnel``; a server-sent events stream is an ordinary response, which HAProxy cuts when
# the app sends nothing for ``timeout server`` (checked on 2.6, where ``timeout client``
# does not apply while the client only reads): an event stream, asked for with ``Accept:
# text/event-stream`` as browsers' EventSource does, gets the tunnel's hour instead.
STREAM_TIMEOUT = "1h"
SERVER_TIMEOUT = "300s"


@dataclass(frozen=True)
class DataPlane:
    """Which router carries plain-HTTP service traffic (``data_plane``), and with
    HAProxy how many services it can route at once (``haproxy_backends``: the pool,
    fixed at its start because a backend cannot be added without a reload), and one
    request in how many has its latency sent to the agent (``haproxy_latency_sample``;
    0: none, the latency histogram stays empty; see ``haproxytraffic.py``), and its
    threads (``haproxy_threads``): one by default, because on the 2-core hosts slipway
    is sized for a second thread cost about a fifth more CPU per request (locks, and
    wake-ups across cores; bench/router.py) and one thread carries far more requests
    than such a host's apps answer."""

    kind: str = "haproxy"
    haproxy_backends: int = 500
    haproxy_bin: str = "haproxy"
    latency_sample: int = 10
    threads: int = 1

    def check(self) -> None:
        """Refuse settings that cannot work, naming the setting."""
        if self.kind not in DATA_PLANES:
            raise InvalidRequest(
                f"data_plane must be one of {', '.join(DATA_PLANES)}, not {self.kind!r}"
            )
        if not 1 <= self.haproxy_backends <= 100_000:
            raise InvalidRequest(
                f"haproxy_backends must be between 1 and 100000, not {self.haproxy_backends}"
            )
        if not self.haproxy_bin.strip():
            raise InvalidRequest("haproxy_bin must name the haproxy program")
        if not 1 <= self.threads <= 64:
            raise InvalidRequest(f"haproxy_threads must be between 1 and 64, not {self.threads}")
        if not 0 <= self.latency_sample <= 100_000:
            raise InvalidRequest(
                "haproxy_latency_sample must be between 0 (off) and 100000,"
                f" not {self.latency_sample}"
            )


@dataclass(frozen=True)
class Server:
    """One server HAProxy reports in a backend; ``enabled``: not in maintenance;
    ``weight``: its share of the backend's requests (``set weight``)."""

    backend: str
    name: str
    address: str
    enabled: bool
    weight: int = 1


def pool_name(index: int) -> str:
    return f"{POOL_PREFIX}{index}"


def server_name(address: str) -> str:
    """An instance's server name: its address, which HAProxy's names allow but ':'."""
    return address.replace(":", "_")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _answer(status: int, body: str) -> str:
    return (
        f'    http-request return status {status} content-type "text/plain; charset=utf-8"'
        f" string {_quoted(body)}\n"
    )


def render_config(
    *,
    http_port: int,
    socket: Path,
    map_file: Path,
    caddy_http: Path,
    backends: int,
    samples: Path | None = None,
    sample: int = 0,
    threads: int = 1,
) -> str:
    """HAProxy's whole config: the same settings always give the same text. With
    ``samples`` and ``sample`` > 0, every ``sample``-th request's backend, status and
    latency go as a datagram to the socket ``samples`` (the agent reads it)."""
    # The frontend logs nothing but the sample. HAProxy formats a request's line before
    # ``log ... sample`` drops it, so an unsampled request is silenced first, by a
    # random draw: about 13% less of HAProxy's CPU per request than the keyword alone
    # (bench/router.py, issue 15).
    sampled = ["    no log\n"]
    if samples is not None and sample > 0:
        sampled += [
            f"    log {samples} format raw local0 info\n",
            f'    log-format "{LOG_FORMAT}"\n',
        ]
        if sample > 1:
            sampled.append(f"    http-request set-log-level silent if {{ rand({sample}) gt 0 }}\n")
    lines = [
        "# Written by slipway at each start; routes change through the Runtime API.\n",
        "global\n",
        f"    nbthread {threads}\n",
        f"    stats socket {socket} mode 600 level admin\n",
        "    log stderr format raw local0 notice\n",
        "defaults\n",
        "    mode http\n",
        "    log global\n",
        "    option dontlognull\n",
        "    timeout connect 5s\n",
        "    timeout client 60s\n",
        f"    timeout server {SERVER_TIMEOUT}\n",
        "    timeout http-request 30s\n",
        "    timeout http-keep-alive 60s\n",
        f"    timeout tunnel {STREAM_TIMEOUT}\n",  # WebSockets and other upgraded connections
        f"    retries {RETRIES}\n",
        "    option redispatch 1\n",
        "    retry-on conn-failure empty-response\n",
        "frontend slipway\n",
        f"    bind :{http_port}\n",
        *sampled,
        f"    use_backend %[req.hdr(host),field(1,:),lower,map({map_file},{FALLBACK})]\n",
        f"backend {PAUSED}\n",
        _answer(503, PAUSED_BODY),
        f"backend {UNAVAILABLE}\n",
        _answer(503, UNAVAILABLE_BODY),
        f"backend {FALLBACK}\n",
        f"    server caddy {caddy_http}\n",
    ]
    streams = (
        f"    http-request set-timeout server {STREAM_TIMEOUT}"
        " if { req.hdr(accept) -m sub text/event-stream }\n"
    )
    for index in range(backends):
        lines.append(f"backend {pool_name(index)}\n    balance roundrobin\n{streams}")
    return "".join(lines)


def parse_map(text: str) -> dict[str, str]:
    """``show map`` -> {host: backend}; lines are ``<ref> <key> <value>``."""
    entries = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            entries[parts[1]] = parts[2]
    return entries


def parse_servers(text: str) -> list[Server]:
    """``show servers state`` (format 1) -> servers; bit 0x1 of the admin state is
    maintenance forced by the API; the user weight follows it."""
    servers = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 19 or not parts[0].isdigit():
            continue  # the version line, the header, blanks
        _, backend, _, name, addr, _, admin, weight = parts[:8]
        port = parts[18]
        servers.append(Server(backend, name, f"{addr}:{port}", not int(admin) & 1, int(weight)))
    return servers


def parse_in_flight(csv: str) -> dict[str, int]:
    """``show stat`` -> requests in flight (``scur`` + queued ``qcur``) per instance
    address of the pool's servers."""
    lines = csv.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise RouterError(f"unexpected answer to HAProxy's show stat: {csv[:200]!r}")
    header = lines[0][2:].split(",")
    try:
        px, sv, scur, qcur, addr = (
            header.index(k) for k in ("pxname", "svname", "scur", "qcur", "addr")
        )
    except ValueError as exc:
        raise RouterError(f"HAProxy's show stat lacks a column: {exc}") from exc
    flights: dict[str, int] = {}
    for line in lines[1:]:
        row = line.split(",")
        if len(row) <= max(px, sv, scur, qcur, addr) or not is_pool(row[px]):
            continue
        if row[sv] in ("FRONTEND", "BACKEND") or not row[addr]:
            continue
        count = int(row[scur] or 0) + int(row[qcur] or 0)
        flights[row[addr]] = flights.get(row[addr], 0) + count
    return flights


def is_pool(backend: str) -> bool:
    """Whether ``backend`` is one of the pool's (``s0``..), which route a service."""
    return backend.startswith(POOL_PREFIX) and backend[len(POOL_PREFIX) :].isdigit()


def assign(
    routes: Iterable[Route], mapped: Mapping[str, str], servers: Iterable[Server], backends: int
) -> dict[str, str]:
    """The backend each route's host goes to: a host keeps the pool backend it has; a
    new one takes a free one, preferring backends with no server left (none draining).
    Traced hosts are left out: HAProxy passes them to Caddy (``Route.traced``); so are
    private ones, which fall to Caddy too, and it answers 404 for them there."""
    wanted: dict[str, str] = {}
    routes = sorted((r for r in routes if r.public and not r.traced), key=lambda r: r.host.lower())
    for route in routes:
        host = route.host.lower()
        if route.paused:
            wanted[host] = PAUSED
        elif not route.upstreams:
            wanted[host] = UNAVAILABLE
    taken = {mapped[h] for h in mapped if h in {r.host.lower() for r in routes}}
    taken = {b for b in taken if is_pool(b)}
    busy = {s.backend for s in servers}
    free = [pool_name(i) for i in range(backends) if pool_name(i) not in taken]
    free.sort(key=lambda b: b in busy)  # stable: empty ones first, in order
    for route in routes:
        host = route.host.lower()
        if host in wanted:
            continue
        current = mapped.get(host, "")
        if is_pool(current) and int(current[len(POOL_PREFIX) :]) < backends:
            wanted[host] = current
        elif free:
            wanted[host] = free.pop(0)
        else:
            raise RouterError(
                f"HAProxy has {backends} backends and all route a service: raise"
                " haproxy_backends (the data plane restarts with the agent)"
            )
    return wanted


def plan(
    routes: Iterable[Route],
    mapped: Mapping[str, str],
    servers: Iterable[Server],
    *,
    map_file: Path,
    backends: int,
) -> list[str]:
    """Runtime API commands from what HAProxy serves (``mapped``, ``servers``) to
    ``routes``, in an order that never leaves a host without an instance it had: new
    servers first (with their weights: a traffic split's shares), then the map, then
    the servers that leave (maintenance: no new requests, the ones in flight finish),
    then the deletion of those in maintenance (which HAProxy refuses while they still
    carry a connection: tried again later)."""
    routes = [r for r in routes if r.public]
    servers = list(servers)
    wanted = assign(routes, mapped, servers, backends)
    members: dict[str, set[str]] = {}
    weights: dict[str, Route] = {}
    for route in routes:
        backend = wanted.get(route.host.lower(), FALLBACK)
        if is_pool(backend):
            members[backend] = set(route.upstreams)
            weights[backend] = route
    have: dict[str, dict[str, Server]] = {}
    for s in servers:
        if is_pool(s.backend):
            have.setdefault(s.backend, {})[s.address] = s
    adds: list[str] = []
    leaves: list[str] = []
    deletes: list[str] = []
    for backend in sorted(set(members) | set(have)):
        wanted_here = members.get(backend, set())
        present = have.get(backend, {})
        for address in sorted(wanted_here):
            server = present.get(address)
            target = f"{backend}/{server.name if server else server_name(address)}"
            weight = weights[backend].weight(address)
            if server is None:
                weighted = f"weight {weight} " if weight != 1 else ""
                adds.append(f"add server {target} {address} {weighted}{SERVER_OPTIONS}")
            elif server.weight != weight:  # a traffic split moved (``traffic.py``)
                adds.append(f"set weight {target} {weight}")
            if server is None or not server.enabled:
                adds.append(f"enable server {target}")
        for address, server in sorted(present.items()):
            if address in wanted_here:
                continue
            target = f"{backend}/{server.name}"
            if server.enabled:
                leaves.append(f"disable server {target}")
            deletes.append(f"del server {target}")
    entries: list[str] = []
    for host, backend in sorted(wanted.items()):
        if host not in mapped:
            entries.append(f"add map {map_file} {host} {backend}")
        elif mapped[host] != backend:
            entries.append(f"set map {map_file} {host} {backend}")
    for host in sorted(set(mapped) - set(wanted)):
        entries.append(f"del map {map_file} {host}")
    return adds + entries + leaves + deletes


def map_text(wanted: Mapping[str, str]) -> str:
    """The map file as HAProxy loads it at a start: ``<host> <backend>`` lines."""
    return "".join(f"{host} {backend}\n" for host, backend in sorted(wanted.items()))
