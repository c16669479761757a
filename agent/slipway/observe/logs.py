"""Log streams per service, laid out as App Runner's log groups are: ``events`` and
``deployment/<operation-id>`` in the service group; later ``instance/<id>`` in the
application group. One JSON line per event in one file per stream, so a reader can
page by byte offset while a writer appends."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidRequest

_STREAM = re.compile(r"(events|deployment/[0-9a-f-]{36})")
MAX_LINE = 16 * 1024  # one event's message is cut beyond this


@dataclass(frozen=True)
class LogEvent:
    timestamp: float
    stream: str
    message: str


class LogStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _path(self, service_id: str, stream: str) -> Path:
        if not _STREAM.fullmatch(stream):
            raise InvalidRequest(f"log stream {stream!r} does not exist")
        return self.root / service_id / (stream.replace("/", "__") + ".jsonl")

    def append(self, service_id: str, stream: str, message: str) -> None:
        path = self._path(service_id, stream)
        lines = [m[:MAX_LINE] for m in message.splitlines() or [""]]
        now = time.time()
        data = "".join(json.dumps({"t": now, "m": m}) + "\n" for m in lines)
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(data)

    def streams(self, service_id: str) -> list[str]:
        folder = self.root / service_id
        if not folder.is_dir():
            return []
        return sorted(p.name.removesuffix(".jsonl").replace("__", "/") for p in folder.iterdir())

    def read(
        self, service_id: str, stream: str, *, offset: int = 0, limit: int = 1000
    ) -> tuple[list[LogEvent], int]:
        """Events from byte ``offset`` on, at most ``limit``; and the offset to go on from."""
        path = self._path(service_id, stream)
        if not path.exists():
            return [], offset
        events = []
        with path.open("rb") as fh:
            fh.seek(offset)
            while len(events) < limit:
                raw = fh.readline()
                if not raw.endswith(b"\n"):  # none left, or a line still being written
                    break
                offset += len(raw)
                item = json.loads(raw)
                events.append(LogEvent(item["t"], stream, item["m"]))
        return events, offset

    def read_merged(
        self, service_id: str, streams: list[str] | None = None, since: float = 0.0
    ) -> list[LogEvent]:
        """Every event of the given streams (default: all) since a time, in time order."""
        merged: list[LogEvent] = []
        for stream in streams or self.streams(service_id):
            offset = 0
            while True:
                batch, offset = self.read(service_id, stream, offset=offset, limit=5000)
                merged += [e for e in batch if e.timestamp >= since]
                if len(batch) < 5000:
                    break
        return sorted(merged, key=lambda e: e.timestamp)
