"""State at rest on disk: who may read the agent's files.

Everything under ``data_dir`` is the owner's alone (directories 0700, files 0600): the
database and its WAL, the logs, the route table, Caddy's access log. The agent runs
with umask 077 (``cli/serve.py``), so what it creates is born that way, and
``secure_data_dir`` corrects what an older version left at start.

Two files are read or written by another process that may run as another user: the
route DNS responder reads ``routes.json``, and Caddy (Debian's ``caddy.service`` runs it
as user ``caddy``) writes its access log in ``<data_dir>/caddy``. With the setting
``state_group`` (a group those users belong to) ``data_dir`` becomes 0710 (members may
pass, not list), ``<data_dir>/caddy`` 2770 (members create and rotate the log there)
and ``routes.json`` 0640, all of that group. Without it they too are owner-only.
"""

from __future__ import annotations

import grp
import logging
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidRequest

log = logging.getLogger("slipway.state")

UMASK = 0o077
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SHARED_DATA_DIR = 0o710
SHARED_CADDY_DIR = 0o2770
SHARED_FILE = 0o640
_GROUP_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class StateAccess:
    """Who besides the owner may reach the agent's files; a setting (``state_group``)."""

    group: str = ""  # "" = nobody

    def check(self) -> None:
        """Refuse a group that is no group name, or that this host does not have."""
        if not self.group:
            return
        if not _GROUP_NAME.fullmatch(self.group):
            raise InvalidRequest(f"state_group: {self.group!r} is not a group name")
        try:
            grp.getgrnam(self.group)
        except KeyError as exc:
            raise InvalidRequest(
                f"state_group: no group {self.group!r} on this host"
                f" (groupadd --system {self.group}, then add Caddy's user to it)"
            ) from exc

    @property
    def gid(self) -> int | None:
        return grp.getgrnam(self.group).gr_gid if self.group else None


def private_file(path: Path) -> None:
    """Create ``path`` empty, mode 0600, unless it exists: so a file another library
    opens later (SQLite's database, Caddy's log) is never born readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
    os.close(fd)


def _restrict(path: Path, mode: int, gid: int | None = None) -> None:
    """Set ``mode`` (and the group) when they differ, saying what changed."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return
    if gid is not None and info.st_gid != gid:
        os.chown(path, -1, gid)
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)
        log.info("%s: mode %o -> %o", path, stat.S_IMODE(info.st_mode), mode)


def secure_data_dir(
    data_dir: Path,
    access: StateAccess,
    *,
    route_table: Path,
    access_log: Path | None,
) -> None:
    """Make ``data_dir`` and everything in it owner-only, but for what ``access`` shares.
    Files keep their owner's execute bits (a build context's scripts); the group and
    others lose everything. Each path gets its final mode at once, so a reader that is
    allowed is never locked out meanwhile."""
    access.check()
    gid = access.gid
    data_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    caddy_dir = access_log.parent if access_log is not None else None
    inside = caddy_dir is not None and caddy_dir.resolve().is_relative_to(data_dir.resolve())
    shared: dict[Path, int] = {}
    if gid is not None:
        shared[route_table] = SHARED_FILE
        if inside:
            caddy_dir.mkdir(parents=True, exist_ok=True)
            shared[caddy_dir] = SHARED_CADDY_DIR
    elif inside:
        # Caddy opens an existing file as it is: born 0600, it stays so through rotation.
        private_file(access_log)
    _restrict(data_dir, PRIVATE_DIR if gid is None else SHARED_DATA_DIR, gid)
    for root, dirs, files in os.walk(data_dir):
        for name in dirs:
            path = Path(root, name)
            _restrict(path, shared.get(path, PRIVATE_DIR), gid if path in shared else None)
        for name in files:
            path = Path(root, name)
            with_x = stat.S_IMODE(path.lstat().st_mode) & 0o100
            _restrict(
                path, shared.get(path, PRIVATE_FILE | with_x), gid if path in shared else None
            )
    if access_log is not None and access_log.exists():
        _restrict(access_log, PRIVATE_FILE)  # its owner (Caddy's user) keeps writing it
