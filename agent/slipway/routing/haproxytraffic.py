"""What HAProxy served, per service host: exact request and status-class counts from its
own counters, and the latency of a sample of requests from a log it sends the agent.

Why this split: counting is free in HAProxy (``show stat``'s ``req_tot`` and
``hrsp_1xx``..``hrsp_5xx`` per backend, kept anyway), while a log line per request
cost 11-12 µs of its CPU here, a quarter of its whole route (issue 15). So the counts,
which users compare to their own, come exact from the counters, and only the latency
histogram, an estimate by nature, comes from one request in ``latency_sample`` (a
random draw silences the others): ``%b %ST %Ta %s`` (backend, status, milliseconds,
and the server: the instance, whose samples a rollout step compares with its
revision's others), as a datagram to a unix socket this module reads. Each sampled latency
stands for N requests, so the histogram's count follows the requests.

Counters are cumulative in HAProxy, which outlives the agent: the first reading is the
baseline, later ones give deltas, and a counter that went down (HAProxy restarted)
counts from zero again. A pool backend's delta goes to the host the map gives it now.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RouterError

log = logging.getLogger("slipway.routing.haproxytraffic")

CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_COLUMNS = ("req_tot", *(f"hrsp_{c}" for c in CLASSES))
LOG_FORMAT = "%b %ST %Ta %s"  # what one sampled line says: backend, status, ms, server
RECENT_MAX = 2000  # latency samples kept per server for a rollout's steps (``recent``)
PENDING_MAX = 100_000  # samples kept between two readings; more are dropped
# The reader wakes at most this often: after a blocked recv it sleeps, then takes every
# datagram queued meanwhile without blocking. Woken per datagram, the agent spent about
# 16 µs of CPU per request routed at 1-in-10 samples (thread wake-ups and the GIL's
# hand-overs, bench/router.py), a third of HAProxy's own. A unix datagram socket queues
# up to net.unix.max_dgram_qlen (512 by default) datagrams: 10,000 samples a second.
BATCH_SECONDS = 0.05


@dataclass(frozen=True)
class Served:
    """Requests one host got since the last reading: ``requests``, their ``classes``
    (``{"2xx": n}``), and the latencies (seconds) of a sample, each standing for
    ``weight`` requests."""

    requests: int = 0
    classes: Mapping[str, int] = field(default_factory=dict)
    latencies: tuple[float, ...] = ()
    weight: int = 1


def parse_counters(csv: str) -> dict[str, tuple[int, ...]]:
    """``show stat`` -> {backend: (req_tot, hrsp_1xx, .., hrsp_5xx)} of the BACKEND rows."""
    lines = csv.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise RouterError(f"unexpected answer to HAProxy's show stat: {csv[:200]!r}")
    header = lines[0][2:].split(",")
    try:
        px, sv, *columns = (header.index(k) for k in ("pxname", "svname", *_COLUMNS))
    except ValueError as exc:
        raise RouterError(f"HAProxy's show stat lacks a column: {exc}") from exc
    last = max(px, sv, *columns)
    counters = {}
    for line in lines[1:]:
        row = line.split(",")
        if len(row) > last and row[sv] == "BACKEND":
            counters[row[px]] = tuple(int(row[c] or 0) for c in columns)
    return counters


class Deltas:
    """Cumulative counters in, what moved since the last reading out."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, ...]] | None = None

    def step(self, counters: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        last, self._last = self._last, dict(counters)
        if last is None:
            return {}  # the baseline: what came before the agent is not its to count
        moved = {}
        for backend, now in counters.items():
            before = last.get(backend)
            if before is None or any(n < b for n, b in zip(now, before, strict=True)):
                before = (0,) * len(now)  # a new or restarted HAProxy counts from zero
            delta = tuple(n - b for n, b in zip(now, before, strict=True))
            if any(delta):
                moved[backend] = delta
        return moved


@dataclass(frozen=True)
class UpstreamServed:
    """One instance's answers: ``requests`` and ``errors`` (5xx) since HAProxy added its
    server (cumulative), and the latencies (seconds) sampled from it lately."""

    requests: int = 0
    errors: int = 0
    latencies: tuple[float, ...] = ()


def parse_sample(line: bytes) -> tuple[str, float] | None:
    """One sampled log line -> (backend, seconds); None for a line of another shape or
    a request that got no answer (``%Ta`` is -1)."""
    parts = line.split()
    if len(parts) not in (3, 4) or not parts[2].isdigit():
        return None
    return parts[0].decode(errors="replace"), int(parts[2]) / 1000


def parse_server_counters(csv: str) -> dict[str, tuple[int, int]]:
    """``show stat`` -> {instance address: (req_tot, hrsp_5xx)} of the pool's servers."""
    lines = csv.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise RouterError(f"unexpected answer to HAProxy's show stat: {csv[:200]!r}")
    header = lines[0][2:].split(",")
    try:
        sv, addr, req, err = (header.index(k) for k in ("svname", "addr", "req_tot", "hrsp_5xx"))
    except ValueError as exc:
        raise RouterError(f"HAProxy's show stat lacks a column: {exc}") from exc
    last = max(sv, addr, req, err)
    counters: dict[str, tuple[int, int]] = {}
    for line in lines[1:]:
        row = line.split(",")
        if len(row) <= last or row[sv] in ("FRONTEND", "BACKEND") or not row[addr]:
            continue
        before = counters.get(row[addr], (0, 0))
        counters[row[addr]] = (before[0] + int(row[req] or 0), before[1] + int(row[err] or 0))
    return counters


def served(
    moved: Mapping[str, tuple[int, ...]],
    samples: Mapping[str, list[float]],
    hosts: Mapping[str, str],
    weight: int,
) -> dict[str, Served]:
    """Per host, from counter deltas and latency samples per backend; ``hosts`` maps
    each pool backend to the host it routes (other backends count for no service)."""
    out = {}
    for backend, host in hosts.items():
        delta = moved.get(backend)
        latencies = tuple(samples.get(backend, ()))
        if delta is None and not latencies:
            continue
        requests, *classes = delta or (0,) * len(_COLUMNS)
        counts = {c: n for c, n in zip(CLASSES, classes, strict=True) if n}
        out[host] = Served(requests, counts, latencies, weight)
    return out


class SampleSocket:
    """The unix datagram socket HAProxy sends sampled log lines to, read by a thread of
    its own (a blocked ``recv``, then what queued meanwhile, in batches at most every
    ``BATCH_SECONDS``) into a list the next reading takes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._sock: socket.socket | None = None
        self._pending: dict[str, list[float]] = {}
        self._recent: dict[str, deque[tuple[float, float]]] = {}  # server -> (when, seconds)
        self._count = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        """Bind the socket (again, if a file was left at the path) and start reading;
        nothing when it is open. HAProxy finds it by path at each line it sends."""
        with self._lock:
            if self._sock is not None:
                return
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                sock.bind(str(self.path))
                os.chmod(self.path, 0o600)
            except OSError as exc:
                sock.close()
                raise RouterError(
                    f"cannot bind HAProxy's samples socket {self.path}: {exc}"
                ) from exc
            self._sock = sock
        reader = threading.Thread(target=self._read, args=(sock,), name="haproxy-samples")
        reader.daemon = True
        reader.start()

    def close(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reader's recv
            sock.close()
            with contextlib.suppress(OSError):
                self.path.unlink()

    def take(self) -> dict[str, list[float]]:
        """The samples since the last call, per backend."""
        with self._lock:
            pending, self._pending, self._count = self._pending, {}, 0
        return pending

    def recent(self, server: str, since: float) -> tuple[float, ...]:
        """The latencies sampled from ``server`` since ``since`` (``time.monotonic``)."""
        with self._lock:
            kept = tuple(self._recent.get(server, ()))
        return tuple(seconds for when, seconds in kept if when >= since)

    def add(self, *lines: bytes) -> None:
        now = time.monotonic()
        parsed = [(line, found) for line in lines if (found := parse_sample(line)) is not None]
        with self._lock:
            for line, (backend, seconds) in parsed:
                parts = line.split()
                if len(parts) == 4:
                    server = parts[3].decode(errors="replace")
                    recent = self._recent.setdefault(server, deque(maxlen=RECENT_MAX))
                    recent.append((now, seconds))
                if self._count >= PENDING_MAX:
                    self.dropped += 1
                    continue
                self._count += 1
                self._pending.setdefault(backend, []).append(seconds)

    def _read(self, sock: socket.socket) -> None:
        while True:
            try:
                first = sock.recv(4096)  # blocked until HAProxy sends one
            except OSError:
                return  # closed
            if not first:
                return
            lines = [first]
            try:
                while True:
                    lines.append(sock.recv(4096, socket.MSG_DONTWAIT))
            except BlockingIOError:
                pass
            except OSError:
                return
            self.add(*lines)
            time.sleep(BATCH_SECONDS)
