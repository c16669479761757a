"""Application logs: every running instance's stdout and stderr, line by line, into the
``instance/<container id[:12]>`` stream of its service, as App Runner's application log
group keeps them.

One thread per followed instance, blocked on the backend's log stream of it
(``Backend.follow_logs``); an idle one costs a thread and a socket, no CPU. These are
stream readers, not periodic work, so they are threads of their own rather than jobs
on the scheduler. Records keep their source (stdout or stderr): docker splits a line
longer than 16 KiB into partial records (no trailing newline, same timestamp), and only
per-source state can join them again when the other source writes in between.

A stream that ends (dockerd restarted, the follower was interrupted) is attached again
with ``since=`` the newest record seen; records docker sends again are skipped by their
timestamp, counting records that share one, so no line is stored twice. After an agent
restart the newest stored line's time is where it goes on from.
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..backends import Backend, Instance, LogStream
from ..errors import BackendError
from .logs import MAX_LINE, LogStore, clean_line

log = logging.getLogger("slipway.applogs")

_NS = 1_000_000_000
_MARGIN_NS = 2 * _NS  # a re-attach starts this much before the newest record seen


def instance_stream(container_id: str) -> str:
    """The log stream of one instance, named by its short container id."""
    return f"instance/{container_id[:12]}"


def parse_timestamp(raw: bytes) -> int | None:
    """Docker's RFC 3339 UTC timestamp (``2024-05-01T10:00:00.123456789Z``) in nanoseconds."""
    if len(raw) < 20 or raw[10:11] != b"T" or raw[-1:] != b"Z":
        return None
    try:
        seconds = calendar.timegm(
            (
                int(raw[0:4]),
                int(raw[5:7]),
                int(raw[8:10]),
                int(raw[11:13]),
                int(raw[14:16]),
                int(raw[17:19]),
            )
        )
        fraction = raw[20:-1] if raw[19:20] == b"." else b""
        nanos = int(fraction[:9].ljust(9, b"0")) if fraction else 0
    except ValueError:
        return None
    return seconds * _NS + nanos


@dataclass
class _Skip:
    """What a re-attached stream repeats, per source: records older than ``ns``, the first
    ``count`` at exactly ``ns``, and (after an agent restart) any at or before ``after``."""

    ns: int = -1
    count: int = 0
    after: float | None = None

    def drops(self, ns: int) -> bool:
        if self.after is not None and ns / _NS <= self.after:
            return True
        if ns < self.ns:
            return True
        if ns == self.ns and self.count > 0:
            self.count -= 1
            return True
        return False


@dataclass
class _Partial:
    """A line docker sent in pieces: its head (a little over MAX_LINE) and what was cut."""

    head: bytearray = field(default_factory=bytearray)
    cut: int = 0

    def add(self, piece: bytes) -> None:
        room = MAX_LINE + 4 - len(self.head)  # clean_line cuts at a character boundary
        self.head += piece[:room]
        self.cut += max(0, len(piece) - room)


class InstanceLines:
    """One container's log records turned into stored lines: partial records joined, long
    lines cut, records repeated by a re-attach skipped. Pure: no docker, no threads."""

    def __init__(self, resume_after: float | None = None) -> None:
        self._resume_after = resume_after  # newest stored line's time from an earlier run
        self._seen: dict[int, tuple[int, int]] = {}  # source → (newest ns, records at it)
        self._skip: dict[int, _Skip] = {}
        self._partial: dict[int, _Partial] = {}

    def since_ns(self) -> int:
        """Where an attach should start; 0 for everything docker kept."""
        if self._seen:
            return max(0, max(ns for ns, _ in self._seen.values()) - _MARGIN_NS)
        if self._resume_after is not None:
            return max(0, int(self._resume_after * _NS) - _MARGIN_NS)
        return 0

    def reattached(self) -> None:
        """The stream was attached again: what comes first may repeat what was seen."""
        self._skip = {source: _Skip(ns, count) for source, (ns, count) in self._seen.items()}

    def feed(self, source: int, record: bytes) -> list[tuple[float, str]]:
        """One record (``<timestamp> <text>``); returns the lines it completes."""
        stamp, _, body = record.partition(b" ")
        ns = parse_timestamp(stamp)
        if ns is None:  # not docker's format: keep it all, timed now
            ns, body = time.time_ns(), record
        if self._dropped(source, ns):
            return []
        seen_ns, count = self._seen.get(source, (-1, 0))
        self._seen[source] = (ns, count + 1 if ns == seen_ns else 1)
        complete = body.endswith(b"\n")
        if complete:
            body = body[:-1]
        partial = self._partial.get(source)
        if partial is None and complete:
            return [(ns / _NS, clean_line(body))]
        if partial is None:
            partial = self._partial[source] = _Partial()
        partial.add(body)
        if not complete:
            return []
        del self._partial[source]
        return [(ns / _NS, clean_line(bytes(partial.head), partial.cut))]

    def _dropped(self, source: int, ns: int) -> bool:
        skip = self._skip.get(source)
        if skip is None and source not in self._seen and self._resume_after is not None:
            skip = self._skip[source] = _Skip(after=self._resume_after)
        if skip is None:
            return False
        if skip.drops(ns):
            return True
        del self._skip[source]  # caught up: from here on every record is new
        return False

    def flush(self) -> list[tuple[float, str]]:
        """Lines left without their newline, once the container has stopped."""
        lines = [
            (self._seen[source][0] / _NS, clean_line(bytes(p.head), p.cut))
            for source, p in self._partial.items()
        ]
        self._partial.clear()
        return lines


class _Follower:
    """A thread that keeps one container's stream attached and stores what it says."""

    def __init__(
        self,
        backend: Backend,
        logs: LogStore,
        instance: Instance,
        lines: InstanceLines,
        retry_max: float,
    ) -> None:
        self.container_id = instance.id
        self.service_id = instance.service_id
        self.stream = instance_stream(instance.id)
        self.lines = lines
        self._backend = backend
        self._logs = logs
        self._retry_max = retry_max
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._stream: LogStream | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"applogs-{instance.id[:12]}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        """Stop following (a line still in pieces is kept for the next follower)."""
        self._stopped.set()
        self.interrupt()

    def interrupt(self) -> None:
        """End the current stream; the follower attaches again (used by tests, too)."""
        with self._lock:
            if self._stream is not None:
                self._stream.interrupt()

    def _run(self) -> None:
        delay, complaint = min(0.5, self._retry_max), None
        while not self._stopped.is_set():
            try:
                stream = self._backend.follow_logs(self.container_id, self.lines.since_ns())
            except BackendError as exc:  # dockerd restarting or down: wait for it
                if exc.message != complaint:
                    log.warning("%s; retrying", exc.message)
                    complaint = exc.message
                self._stopped.wait(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            if stream is None:  # the container is gone
                break
            delay, complaint = min(0.5, self._retry_max), None
            self.lines.reattached()  # an earlier stream (maybe another follower's) saw some
            self._follow(stream)
            if not stream.running:  # it had stopped: that stream held everything
                break
        if not self._stopped.is_set():
            self._store(self.lines.flush())

    def _follow(self, stream: LogStream) -> None:
        with self._lock:
            self._stream = stream
            if self._stopped.is_set():
                stream.interrupt()
        try:
            for frames in stream:
                lines: list[tuple[float, str]] = []
                for source, record in frames:
                    lines += self.lines.feed(source, record)
                self._store(lines)
        finally:
            with self._lock:
                self._stream = None
            stream.close()

    def _store(self, lines: list[tuple[float, str]]) -> None:
        if lines:
            self._logs.append_lines(self.service_id, self.stream, lines)


class AppLogCollector:
    """Follows every running slipway instance's output into its service's log streams.

    ``sync`` is called from the reconcile loop with what the backend lists: it starts a
    follower for each running instance not followed yet (again after it stopped and
    restarted) and stops those of instances no longer listed. It also prunes old logs
    once per ``prune_interval`` seconds.
    """

    def __init__(
        self,
        logs: LogStore,
        backend: Backend,
        *,
        retry_max: float = 10.0,
        prune_interval: float = 3600.0,
    ) -> None:
        self.logs = logs
        self.backend = backend
        self.retry_max = retry_max
        self.prune_interval = prune_interval
        self._followers: dict[str, _Follower] = {}
        self._lines: dict[str, InstanceLines] = {}  # kept while the container exists
        self._lock = threading.Lock()
        self._last_prune = -prune_interval  # the first sync prunes
        self._closed = False

    def sync(self, instances: Iterable[Instance]) -> None:
        """Follow the running instances among ``instances``; forget the ones not listed."""
        listed = {i.id: i for i in instances if i.service_id}
        with self._lock:
            if self._closed:
                return
            for container_id in list(self._followers):
                follower = self._followers[container_id]
                if container_id not in listed:
                    follower.stop()
                if not follower.alive or container_id not in listed:
                    del self._followers[container_id]
            for container_id in list(self._lines):
                if container_id not in listed:
                    del self._lines[container_id]
            for container_id, inst in listed.items():
                if inst.running and container_id not in self._followers:
                    self._start(inst)
        if time.monotonic() - self._last_prune >= self.prune_interval:
            self._last_prune = time.monotonic()
            self.logs.prune()

    def _start(self, inst: Instance) -> None:
        lines = self._lines.get(inst.id)
        if lines is None:
            resume = self.logs.last_timestamp(inst.service_id, instance_stream(inst.id))
            lines = self._lines[inst.id] = InstanceLines(resume_after=resume)
        follower = _Follower(self.backend, self.logs, inst, lines, self.retry_max)
        self._followers[inst.id] = follower
        follower.start()

    def followed(self) -> list[str]:
        """Container ids followed right now."""
        with self._lock:
            return [cid for cid, f in self._followers.items() if f.alive]

    def interrupt(self, container_id: str) -> None:
        """End a follower's current stream, as a dockerd restart would; it attaches again."""
        with self._lock:
            follower = self._followers.get(container_id)
        if follower is not None:
            follower.interrupt()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every follower and wait for their threads."""
        with self._lock:
            self._closed = True
            followers = list(self._followers.values())
            self._followers.clear()
        for follower in followers:
            follower.stop()
        deadline = time.monotonic() + timeout
        for follower in followers:
            follower.thread.join(max(0.0, deadline - time.monotonic()))
