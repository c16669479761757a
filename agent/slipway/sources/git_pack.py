"""A fetched pack, on disk and bounded: written as it arrives, scanned before dulwich
indexes it, and its blobs inflated straight into files.

dulwich's own ``fetch`` spools the pack in memory up to 16 MB and then holds every
object whole while it indexes; here the pack goes to a file from the first byte
(``PackFile``), its object count and each object's inflated size are checked by
streaming through it with bounded buffers (``scan_pack``), and a checkout writes a
blob by inflating its bytes from the pack in chunks (``PackedBlobs``). What crosses
a limit fails with ``GitLimitExceeded`` naming the limit's setting.
"""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path
from typing import IO, BinaryIO

from dulwich.object_store import BaseObjectStore

from .git_errors import GitError, GitLimitExceeded
from .git_limits import MB, GitLimits

_BLOB = 3
_OFS_DELTA = 6
_REF_DELTA = 7
_CHUNK = 64 * 1024
_DELTA_HEADER = 20  # two size varints: the base's and the result's


class Deadline:
    """The end of one fetch's time, checked between steps (a stalled socket is the
    socket timeout's)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self._end:
            raise GitLimitExceeded(
                f"the fetch took longer than {self.seconds:g} seconds (setting git_fetch_timeout)"
            )


def exceeded(what: str, limit: int, unit: str, setting: str) -> GitLimitExceeded:
    """The one wording of a crossed limit: what, the limit, the setting that sets it."""
    return GitLimitExceeded(
        f"the repository is too big: {what} exceeds the limit of {limit:,} {unit}"
        f" (setting {setting})"
    )


class PackFile:
    """The sink dulwich's ``fetch_pack`` writes pack bytes into: a file, counted."""

    def __init__(self, path: Path, limits: GitLimits, deadline: Deadline) -> None:
        self.path = path
        self._limit = limits.max_pack_mb
        self._deadline = deadline
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self._limit * MB:
            raise exceeded("its pack", self._limit, "MB", "git_max_pack_mb")
        self._deadline.check()
        return self._file.write(data)

    def close(self) -> None:
        self._file.close()


def scan_pack(path: Path, limits: GitLimits, deadline: Deadline) -> int:
    """Walk every object of the pack at ``path`` without keeping one, and refuse a pack
    of more than ``git_max_objects`` objects or with an object (or a delta's result)
    that inflates past ``git_max_blob_mb``; return the object count."""
    cap = limits.max_blob_mb * MB
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"PACK":
            raise GitError("the server sent no pack")
        (count,) = struct.unpack(">L", header[8:12])
        if count > limits.max_objects:
            raise exceeded(
                f"its pack of {count:,} objects", limits.max_objects, "objects", "git_max_objects"
            )
        for _ in range(count):
            deadline.check()
            kind, _size = _object_header(f)
            if kind == _OFS_DELTA:
                while _byte(f) & 0x80:
                    pass
            elif kind == _REF_DELTA:
                f.read(20)
            head, inflated = _inflate(f, None, cap, keep=_DELTA_HEADER)
            if kind in (_OFS_DELTA, _REF_DELTA):
                inflated = max(inflated, _delta_result_size(head))
            if inflated > cap:
                raise exceeded(
                    "one of its objects", limits.max_blob_mb, "MB per object", "git_max_blob_mb"
                )
    return count


class PackedBlobs:
    """Sizes and contents of blobs, read from the packs of a store without inflating
    a whole blob in memory. Blobs stored as deltas (or loose) are read through dulwich,
    whole, which ``scan_pack`` has bounded."""

    def __init__(self, store: BaseObjectStore) -> None:
        self._store = store
        self._files: dict[str, IO[bytes]] = {}
        self._sizes: dict[bytes, int] = {}

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def size(self, sha: bytes) -> int:
        """A blob's size from its pack entry's header; one lookup per blob."""
        if sha not in self._sizes:
            found = self._locate(sha)
            if found is None:
                self._sizes[sha] = len(self._store[sha].as_raw_string())
            else:
                f, kind, size = found
                if kind in (_OFS_DELTA, _REF_DELTA):
                    head, _ = _inflate(f, None, None, keep=_DELTA_HEADER)
                    size = _delta_result_size(head)
                self._sizes[sha] = size
        return self._sizes[sha]

    def write(self, sha: bytes, out: IO[bytes]) -> None:
        """Write a blob's bytes into ``out``, inflated chunk by chunk when it is stored whole."""
        found = self._locate(sha)
        if found is not None and found[1] == _BLOB:
            _, size = _inflate(found[0], out, found[2], keep=0)
            if size != found[2]:
                raise GitError(f"the server's pack has a blob of the wrong size ({sha.decode()})")
            return
        for chunk in self._store[sha].as_raw_chunks():
            out.write(chunk)

    def _locate(self, sha: bytes) -> tuple[IO[bytes], int, int] | None:
        """The pack file positioned after the entry's header (and a delta's base), the
        entry's type and its declared size; None for an object in no pack."""
        for pack in getattr(self._store, "packs", ()):
            try:
                offset = pack.index.object_offset(sha)
            except KeyError:
                continue
            path = str(pack.data.path)
            f = self._files.get(path)
            if f is None:
                f = self._files[path] = open(path, "rb")  # noqa: SIM115 - closed by close()
            f.seek(offset)
            kind, size = _object_header(f)
            if kind == _OFS_DELTA:
                while _byte(f) & 0x80:
                    pass
            elif kind == _REF_DELTA:
                f.read(20)
            return f, kind, size
        return None


def _byte(f: IO[bytes]) -> int:
    b = f.read(1)
    if not b:
        raise GitError("the server's pack is truncated")
    return b[0]


def _object_header(f: IO[bytes]) -> tuple[int, int]:
    """A pack entry's type and declared (inflated) size."""
    c = _byte(f)
    kind, size, shift = (c >> 4) & 7, c & 0x0F, 4
    while c & 0x80:
        c = _byte(f)
        size |= (c & 0x7F) << shift
        shift += 7
    return kind, size


def _inflate(
    f: IO[bytes], out: IO[bytes] | None, cap: int | None, *, keep: int
) -> tuple[bytes, int]:
    """Inflate the zlib stream at ``f``'s position, leaving ``f`` just after it; write the
    bytes to ``out`` (or drop them), keep the first ``keep``, and stop past ``cap``.
    Returns the kept head and the inflated size (just over ``cap`` when it stopped)."""
    inflater = zlib.decompressobj()
    head = b""
    total = 0
    while not inflater.eof:
        data = inflater.unconsumed_tail or f.read(_CHUNK)
        if not data:
            raise GitError("the server's pack is truncated")
        chunk = inflater.decompress(data, _CHUNK)
        total += len(chunk)
        if len(head) < keep:
            head += chunk[: keep - len(head)]
        if cap is not None and total > cap:
            return head, total
        if out is not None:
            out.write(chunk)
    if inflater.unused_data:
        f.seek(-len(inflater.unused_data), 1)
    return head, total


def _delta_result_size(head: bytes) -> int:
    """The second size varint of a delta: the size of the object it makes."""
    pos = 0
    for _ in range(2):
        size = shift = 0
        while True:
            if pos >= len(head):
                raise GitError("the server's pack has a malformed delta")
            c = head[pos]
            pos += 1
            size |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                break
    return size
