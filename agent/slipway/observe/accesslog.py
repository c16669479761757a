"""Caddy's access log, followed by byte offset: the whole lines written since the last
read, across Caddy's rolls and a file truncated or replaced in place.

Apart from ``metrics.py`` because following a file that another process writes, rolls
and may replace (its identity, an offset, half-written lines) is a concern of its own;
the figures see only batches of whole lines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

READ_CHUNK = 4 * 1024 * 1024  # bytes of access log read per batch
# The file's first bytes (a line's sub-second timestamp among them) tell a file that was
# replaced under the same inode number, which a file system may hand out again at once.
HEAD_BYTES = 128


class AccessLogTail:
    """Where reading stopped in one access log. Not thread-safe: the reader holds a lock."""

    def __init__(self, path: Path, *, from_start: bool) -> None:
        """By default reading starts at the file's end, so a restarted agent does not
        count old requests again; ``from_start`` reads the lines already there."""
        self.path = path
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the file read
        self._head = b""  # its first bytes
        self._offset = 0
        if not from_start:
            self._skip_to_end()

    def _skip_to_end(self) -> None:
        try:
            with self.path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                head = fh.read(HEAD_BYTES)
                start = max(0, st.st_size - 65536)
                fh.seek(start)
                tail = fh.read(st.st_size - start)
        except FileNotFoundError:
            return
        self._ident, self._head = (st.st_dev, st.st_ino), head
        self._offset = start + tail.rfind(b"\n") + 1  # a half-written line is read later

    def batches(self) -> Iterator[bytes]:
        """Whole lines written since the last read. A new file at the path (Caddy rolled
        it: same inode, new name) is read from its start, after the rest of the old one;
        so is a file truncated or replaced in place."""
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return
        with fh:
            st = os.fstat(fh.fileno())
            ident = (st.st_dev, st.st_ino)
            head = fh.read(HEAD_BYTES)
            if self._ident is not None and ident != self._ident:
                rolled = self._find_rolled(self._ident)
                if rolled is not None:
                    try:
                        with rolled.open("rb") as old:
                            yield from self._read_from(old)
                    except FileNotFoundError:
                        pass  # removed meanwhile: those lines are lost
                self._offset = 0
            elif st.st_size < self._offset or not head.startswith(self._head):
                self._offset = 0
            self._ident, self._head = ident, head
            yield from self._read_from(fh)

    def _read_from(self, fh: Any) -> Iterator[bytes]:
        fh.seek(self._offset)
        while True:
            chunk = fh.read(READ_CHUNK)
            end = chunk.rfind(b"\n") + 1
            if end == 0:
                if len(chunk) == READ_CHUNK:  # a line longer than a batch: not ours, skip
                    self._offset += len(chunk)
                    continue
                return
            self._offset += end
            yield chunk[:end]
            if len(chunk) < READ_CHUNK:
                return
            fh.seek(self._offset)

    def _find_rolled(self, ident: tuple[int, int]) -> Path | None:
        try:
            for entry in os.scandir(self.path.parent):
                st = entry.stat(follow_symlinks=False)
                if (st.st_dev, st.st_ino) == ident:
                    return Path(entry.path)
        except OSError:
            return None
        return None
