"""Log streams per service, laid out as App Runner's log groups are: ``events`` and
``deployment/<operation-id>`` in the service group, ``instance/<container-id>`` in the
application group (kept after the instance is gone).

One JSON line per event (``{"t": epoch seconds, "m": text}``) in one file per stream,
so a reader can page by byte offset while a writer appends. A file that would grow past
``max_bytes`` is rotated logrotate-style (``x.jsonl`` → ``x.jsonl.1`` → … →
``x.jsonl.<keep_files>``, the oldest deleted). Each file after the first starts with a
``{"gen": N}`` line, its generation, so a reader's offset survives rotation: offsets are
``generation << 32 | byte offset`` (still plain ints; generation 0 is the format before
rotation existed). ``prune`` deletes rotated files, and whole instance streams, whose
newest line is older than ``max_age_days``.

Writing never raises: a full disk drops lines, counts them in ``dropped`` and reports
itself in ``problems()``, logging once when it starts and once when it ends.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import InvalidRequest

log = logging.getLogger("slipway.logs")

_STREAM = re.compile(r"events|deployment/[0-9a-f-]{36}|instance/[0-9a-f]{12,64}")
SERVICE_GROUP = "service"  # events and deployments, App Runner's /service log group
APPLICATION_GROUP = "application"  # instance/<id> streams, App Runner's /application group
MAX_LINE = 16 * 1024  # bytes of one line kept; the rest is cut with a marker
_GEN_SHIFT = 32  # offset = generation << 32 | byte offset in that generation's file
_POS_MASK = (1 << _GEN_SHIFT) - 1
_TAIL = 256 * 1024  # bytes read from a file's end to find its newest line
_HEADER = b'{"gen": '
_MARKER = re.compile(r"…\[cut \d+ bytes\]\Z")


@dataclass(frozen=True)
class LogEvent:
    timestamp: float
    stream: str
    message: str


def clean_line(data: bytes | str, cut: int = 0) -> str:
    """One line as stored: invalid UTF-8 replaced, cut to MAX_LINE bytes with a marker.

    ``cut`` counts bytes a caller already dropped (the app log collector keeps only a head).
    Idempotent: a line this made comes back unchanged.
    """
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: make them U+FFFD below
            raw = data.encode("utf-8", "surrogatepass")
        else:
            if not cut and (len(raw) <= MAX_LINE or _already_cut(data)):
                return data
        data = raw
    if len(data) > MAX_LINE:
        end = MAX_LINE
        while end > MAX_LINE - 3 and data[end] & 0xC0 == 0x80:  # don't split a character
            end -= 1
        cut += len(data) - end
        data = data[:end]
    text = data.decode("utf-8", "replace")
    return f"{text}…[cut {cut} bytes]" if cut else text


def _already_cut(text: str) -> bool:
    marker = _MARKER.search(text)
    return marker is not None and len(text[: marker.start()].encode()) <= MAX_LINE


def _encode(timestamp: float, message: bytes | str) -> bytes:
    return (json.dumps({"t": timestamp, "m": clean_line(message)}) + "\n").encode()


def _rotated(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def _first_line(path: Path) -> bytes | None:
    """The start of a file's first line; None if the file is missing or empty."""
    try:
        with path.open("rb") as fh:
            head = fh.read(64)
    except FileNotFoundError:
        return None
    return head.split(b"\n", 1)[0] if head else None


def _file_gen(head: bytes) -> int:
    if head.startswith(_HEADER):
        try:
            return int(json.loads(head)["gen"])
        except (ValueError, KeyError, TypeError):
            return 0
    return 0


def _newest_line_time(path: Path) -> float | None:
    """The newest time among a file's last lines; None if it is missing or has none."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _TAIL))
            tail = fh.read()
    except FileNotFoundError:
        return None
    times: list[float] = []
    for raw in reversed(tail.split(b"\n")):
        try:
            times.append(float(json.loads(raw)["t"]))
        except (ValueError, KeyError, TypeError):  # the header, a cut first line, damage
            continue
        if len(times) == 50:  # a few, as stdout and stderr lines may land out of order
            break
    return max(times) if times else None


def _newest_time(path: Path) -> float | None:
    """The newest line's time in a file, else its mtime; None if it is missing."""
    newest = _newest_line_time(path)
    if newest is None:
        try:
            return path.stat().st_mtime
        except FileNotFoundError:
            return None
    return newest


class LogStore:
    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = 10 * 1024 * 1024,
        keep_files: int = 3,
        max_age_days: float = 14,
    ) -> None:
        if not 1024 <= max_bytes <= 1 << 31:  # offsets keep 32 bits for the position
            raise ValueError("max_bytes must be between 1 KiB and 2 GiB")
        if keep_files < 0 or max_age_days <= 0:
            raise ValueError("keep_files must be >= 0 and max_age_days > 0")
        self.root = root
        self.max_bytes = max_bytes
        self.keep_files = keep_files
        self.max_age_days = max_age_days
        self.dropped: dict[str, int] = {}  # lines lost to failed writes, per service id
        self._lock = threading.Lock()
        self._paths: dict[tuple[str, str], Path] = {}
        self._gens: dict[Path, int] = {}  # generation of each stream's current file
        self._failure: str | None = None  # why writes fail now; None while they work
        self._failing_since = 0.0
        self._dropped_in_failure = 0

    # -- names ------------------------------------------------------------------------

    def _path(self, service_id: str, stream: str) -> Path:
        path = self._paths.get((service_id, stream))
        if path is None:  # checked and built once: app streams append a line at a time
            if not _STREAM.fullmatch(stream) or "/" in service_id or service_id in ("", ".", ".."):
                raise InvalidRequest(f"log stream {stream!r} does not exist")
            if len(self._paths) >= 4096:
                self._paths.clear()
            path = self.root / service_id / (stream.replace("/", "__") + ".jsonl")
            self._paths[(service_id, stream)] = path
        return path

    def streams(self, service_id: str, group: str | None = None) -> list[str]:
        """Stream names of a service, of one log group (``service``/``application``) or all."""
        folder = self.root / service_id
        if not folder.is_dir():
            return []
        names = set()
        for p in folder.iterdir():
            base, dot, _ = p.name.partition(".jsonl")
            if dot:
                names.add(base.replace("__", "/"))
        if group == APPLICATION_GROUP:
            names = {n for n in names if n.startswith("instance/")}
        elif group == SERVICE_GROUP:
            names = {n for n in names if not n.startswith("instance/")}
        return sorted(names)

    # -- writing ----------------------------------------------------------------------

    def append(
        self, service_id: str, stream: str, message: str, *, timestamp: float | None = None
    ) -> None:
        """Store each line of ``message``. Never raises for I/O: failed lines are dropped."""
        t = time.time() if timestamp is None else timestamp
        self.append_lines(service_id, stream, [(t, m) for m in message.splitlines() or [""]])

    def append_lines(
        self, service_id: str, stream: str, lines: Iterable[tuple[float, bytes | str]]
    ) -> None:
        """Store ``(timestamp, line)`` pairs as they are (no further splitting); never raises
        for I/O."""
        path = self._path(service_id, stream)
        records = [_encode(t, m) for t, m in lines]
        with self._lock:
            done = 0
            try:
                while done < len(records):
                    done += self._write(path, records[done:])
            except OSError as exc:
                self._failed(service_id, len(records) - done, exc)
            else:
                self._worked()

    def _write(self, path: Path, records: Sequence[bytes]) -> int:
        """Append as many records as fit the current file (at least one); rotate first when
        the file is full. Returns how many were written."""
        gen = self._gen(path)
        fh = self._open_append(path)
        try:
            size = os.fstat(fh.fileno()).st_size
            header = len(b'{"gen": %d}\n' % gen) if gen else 0
            if size > header and size + len(records[0]) > self.max_bytes:
                fh.close()
                gen = self._rotate(path, gen)
                fh = self._open_append(path)
                size = os.fstat(fh.fileno()).st_size
            data = bytearray(b'{"gen": %d}\n' % gen if gen and size == 0 else b"")
            if size and not self._ends_with_newline(fh, size):
                data += b"\n"  # seal a line a crash left half-written
            count = 0
            for record in records:
                if count and size + len(data) + len(record) > self.max_bytes:
                    break
                data += record
                count += 1
            try:
                view = memoryview(data)
                while view:
                    written = fh.write(view)
                    if not written:
                        raise OSError(errno.EIO, "write made no progress")
                    view = view[written:]
            except OSError:
                fh.truncate(size)  # no half line left behind for readers or later writes
                raise
            return count
        finally:
            fh.close()

    def _open_append(self, path: Path) -> IO[bytes]:
        try:
            return path.open("a+b", buffering=0)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            return path.open("a+b", buffering=0)

    @staticmethod
    def _ends_with_newline(fh: IO[bytes], size: int) -> bool:
        fd = fh.fileno()
        return os.pread(fd, 1, size - 1) == b"\n"

    def _rotate(self, path: Path, gen: int) -> int:
        """``x`` → ``x.1`` → … → ``x.<keep_files>``; the oldest, and any beyond, deleted."""
        for p in path.parent.glob(f"{path.name}.*"):
            suffix = p.name.rsplit(".", 1)[1]
            if suffix.isdigit() and int(suffix) >= max(self.keep_files, 1):
                p.unlink(missing_ok=True)
        for index in range(self.keep_files - 1, 0, -1):
            older = _rotated(path, index)
            if older.exists():
                os.replace(older, _rotated(path, index + 1))
        if self.keep_files:
            os.replace(path, _rotated(path, 1))
        else:
            path.unlink()
        self._gens[path] = gen + 1
        return gen + 1

    def _gen(self, path: Path) -> int:
        """The current file's generation: from its header, else one past the newest
        rotated file's; cached."""
        gen = self._gens.get(path)
        if gen is None:
            gen = 0
            for distance, candidate in enumerate((path, _rotated(path, 1))):
                head = _first_line(candidate)
                if head is not None:
                    gen = _file_gen(head) + distance
                    break
            self._gens[path] = gen
        return gen

    def _failed(self, service_id: str, lines: int, exc: OSError) -> None:
        self.dropped[service_id] = self.dropped.get(service_id, 0) + lines
        reason = f"{errno.errorcode.get(exc.errno or 0, 'error')}: {exc.strerror or exc}"
        if reason != self._failure:
            log.warning("cannot write logs under %s (%s); dropping lines", self.root, reason)
            if self._failure is None:
                self._failing_since, self._dropped_in_failure = time.time(), 0
            self._failure = reason
        self._dropped_in_failure += lines

    def _worked(self) -> None:
        if self._failure is not None:
            log.warning(
                "writing logs under %s again; %d lines were dropped",
                self.root,
                self._dropped_in_failure,
            )
            self._failure = None

    def problems(self) -> list[str]:
        """What is wrong with log writing right now, for the agent to surface; [] if fine."""
        with self._lock:
            if self._failure is None:
                return []
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._failing_since))
            return [
                f"log writes under {self.root} fail since {since} ({self._failure}); "
                f"{self._dropped_in_failure} lines dropped"
            ]

    # -- reading ----------------------------------------------------------------------

    def read(
        self, service_id: str, stream: str, *, offset: int = 0, limit: int = 1000
    ) -> tuple[list[LogEvent], int]:
        """Events from ``offset`` on, at most ``limit``, across rotated files; and the offset
        to go on from. Offset 0 is the oldest line kept; an offset whose file was rotated
        away goes on from the oldest line kept."""
        path = self._path(service_id, stream)
        gen, pos = offset >> _GEN_SHIFT, offset & _POS_MASK
        events: list[LogEvent] = []
        while True:
            with self._lock:  # resolve and open together: a rotation may rename files
                current = self._gen(path)
                oldest = current - self._rotated_count(path)
                if not oldest <= gen <= current:
                    gen, pos = oldest, 0
                try:
                    fh = (path if gen == current else _rotated(path, current - gen)).open("rb")
                except FileNotFoundError:
                    break
            with fh:
                if pos > os.fstat(fh.fileno()).st_size:  # not this file's offset
                    pos = 0
                pos, at_end = self._read_file(fh, pos, stream, events, limit)
            if len(events) >= limit or not at_end or gen >= current:
                break
            gen, pos = gen + 1, 0
        return events, (gen << _GEN_SHIFT) | pos

    @staticmethod
    def _read_file(
        fh: IO[bytes], pos: int, stream: str, events: list[LogEvent], limit: int
    ) -> tuple[int, bool]:
        fh.seek(pos)
        while len(events) < limit:
            raw = fh.readline()
            if not raw.endswith(b"\n"):  # none left, or a line still being written
                return pos, True
            pos += len(raw)
            try:
                item = json.loads(raw)
                events.append(LogEvent(item["t"], stream, item["m"]))
            except (ValueError, KeyError, TypeError):  # the header, or a damaged line
                continue
        return pos, False

    def _rotated_count(self, path: Path) -> int:
        count = 0
        while _rotated(path, count + 1).exists():
            count += 1
        return count

    def read_merged(
        self,
        service_id: str,
        streams: list[str] | None = None,
        since: float = 0.0,
        *,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[LogEvent]:
        """The events of the given streams (None: all) since a time, in time order; at most
        ``limit``: the oldest (so ``since`` = last timestamp pages forward), or with
        ``newest`` the latest, as ``tail`` would show them."""
        merged: list[LogEvent] = []
        for stream in self.streams(service_id) if streams is None else streams:
            if newest and limit is not None:
                merged += self._newest(service_id, stream, since, limit)
                continue
            offset = self._offset_since(service_id, stream, since)
            while True:
                batch, offset = self.read(service_id, stream, offset=offset, limit=5000)
                merged += [e for e in batch if e.timestamp >= since]
                if len(batch) < 5000:
                    break
        merged.sort(key=lambda e: e.timestamp)
        if limit is None:
            return merged
        return merged[-limit:] if newest and limit else merged[:limit]

    def _newest(self, service_id: str, stream: str, since: float, limit: int) -> list[LogEvent]:
        """A stream's last ``limit`` events since a time, reading its files newest first."""
        path = self._path(service_id, stream)
        events: list[LogEvent] = []
        with self._lock:
            current = self._gen(path)
            count = self._rotated_count(path)
        for distance in range(count + 1):
            with self._lock:  # open by name only while the names mean what they meant
                if self._gen(path) != current:
                    break
                try:
                    fh = (path if distance == 0 else _rotated(path, distance)).open("rb")
                except FileNotFoundError:
                    break
            batch: list[LogEvent] = []
            with fh:
                self._read_file(fh, 0, stream, batch, 1 << 62)
            events = [e for e in batch if e.timestamp >= since] + events
            if len(events) >= limit or (batch and batch[0].timestamp < since):
                break
        return events[-limit:] if limit else []

    def _offset_since(self, service_id: str, stream: str, since: float) -> int:
        """Where to start reading for events since a time: skips rotated files older."""
        path = self._path(service_id, stream)
        with self._lock:
            current = self._gen(path)
            for distance in range(self._rotated_count(path), 0, -1):
                newest = _newest_time(_rotated(path, distance))
                if newest is not None and newest >= since:
                    return (current - distance) << _GEN_SHIFT
            return current << _GEN_SHIFT

    def last_timestamp(self, service_id: str, stream: str) -> float | None:
        """The newest line's time in a stream, or None if it has none; for resuming."""
        path = self._path(service_id, stream)
        with self._lock:
            for candidate in (path, _rotated(path, 1)):
                try:
                    newest = _newest_line_time(candidate)
                except OSError as exc:
                    log.warning("reading %s: %s", candidate, exc)
                    return None
                if newest is not None:
                    return newest
        return None

    # -- pruning ----------------------------------------------------------------------

    def prune(self, now: float | None = None) -> int:
        """Delete rotated files, and whole instance streams, whose newest line is older than
        ``max_age_days``. Returns how many files went."""
        cutoff = (time.time() if now is None else now) - self.max_age_days * 86400
        removed = 0
        if not self.root.is_dir():
            return 0
        with self._lock:
            for folder in self.root.iterdir():
                if not folder.is_dir():
                    continue
                try:
                    for path in folder.glob("*.jsonl"):
                        removed += self._prune_stream(path, cutoff)
                    for path in folder.glob("*.jsonl.1"):  # rotated files without a current
                        current = path.with_name(path.name.removesuffix(".1"))
                        if not current.exists():
                            removed += self._prune_stream(current, cutoff)
                except OSError as exc:  # the reconcile loop calls this: report, go on
                    log.warning("pruning logs in %s: %s", folder, exc)
        return removed

    def _prune_stream(self, path: Path, cutoff: float) -> int:
        removed = 0
        rotated = [_rotated(path, i) for i in range(1, self._rotated_count(path) + 1)]
        for old in rotated:
            newest = _newest_time(old)
            if newest is not None and newest < cutoff:
                old.unlink(missing_ok=True)
                removed += 1
        newest = _newest_time(path)
        instance = path.name.startswith("instance__")
        if instance and (newest is None or newest < cutoff) and not self._rotated_count(path):
            if path.exists():
                path.unlink()
                removed += 1
            self._gens.pop(path, None)
        return removed
