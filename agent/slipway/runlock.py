"""The one agent of a data_dir: a running agent holds an exclusive lock on
``<data_dir>/agent.lock`` until its process ends (however it ends: the kernel lets go of
a killed process's lock), so a second agent, or a restore, can tell it runs."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from .errors import InvalidState

LOCK_FILE = "agent.lock"


def hold(data_dir: Path) -> IO[bytes]:
    """Take the lock for this process; keep the returned file open as long as it runs."""
    lock = _open(data_dir)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        lock.close()
        raise InvalidState(f"another slipway agent runs on {data_dir}") from exc
    return lock


def running(data_dir: Path) -> bool:
    """Whether an agent holds the lock of ``data_dir`` now."""
    if not (data_dir / LOCK_FILE).exists():
        return False
    with _open(data_dir) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def _open(data_dir: Path) -> IO[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    return os.fdopen(fd, "r+b")
