"""Writing a fetched commit's tree to disk, and the SourceDirectory inside it.

Separate from ``git.py`` because it is the part that touches the build directory: a
tree from an untrusted repository is measured against the ``git_*`` limits before a
file is written (a small pack can name one blob a million times), then written blob
by blob without ever following a symlink or leaving ``dest``. It reads a dulwich
object store; the fetching is ``git.py``'s.
"""

from __future__ import annotations

import logging
import os
import posixpath
import stat
from pathlib import Path, PurePosixPath

from dulwich.errors import NotTreeError
from dulwich.object_store import BaseObjectStore, MaxTreeDepthExceeded, tree_lookup_path
from dulwich.objects import Commit as GitCommit
from dulwich.objects import SubmoduleEncountered, Tree
from dulwich.repo import Repo

from ..errors import InvalidRequest
from .git_errors import GitError, SourceDirectoryNotFound
from .git_limits import MB, GitLimits
from .git_pack import Deadline, PackedBlobs, exceeded

log = logging.getLogger(__name__)


def parse_source_directory(value: str | None) -> PurePosixPath | None:
    """App Runner's SourceDirectory as a path relative to the repository root, or None.

    The service model says the path "is absolute from root": ``/app`` and ``app`` both
    name the repository's ``app`` directory, and ``/`` is the root itself. Anything that
    climbs out (``..``) or into ``.git`` is refused.
    """
    if value is None or value.strip("/") == "":
        return None
    path = PurePosixPath(value.lstrip("/"))
    if any(part in ("..", ".git") for part in path.parts) or "\x00" in value:
        raise InvalidRequest(
            f"SourceDirectory {value!r} must be a directory inside the repository, like /app/web"
        )
    return path


def check_source_directory(repo: Repo, commit: GitCommit, subdir: PurePosixPath | None) -> None:
    """Refuse a missing SourceDirectory before any file is written."""
    if subdir is None:
        return
    try:
        mode, _ = tree_lookup_path(
            repo.object_store.__getitem__, commit.tree, str(subdir).encode("utf-8")
        )
    except (KeyError, ValueError, NotTreeError, SubmoduleEncountered) as exc:
        raise SourceDirectoryNotFound(
            f"SourceDirectory {str(subdir)!r} does not exist in commit {commit.id.decode()[:12]}"
        ) from exc
    if not (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        raise SourceDirectoryNotFound(
            f"SourceDirectory {str(subdir)!r} is a file, not a directory,"
            f" in commit {commit.id.decode()[:12]}"
        )


def measure_tree(
    blobs: PackedBlobs,
    store: BaseObjectStore,
    tree_id: bytes,
    limits: GitLimits,
    deadline: Deadline,
) -> None:
    """Refuse a tree with more than ``git_max_files`` entries (directories count: a bomb
    of empty ones costs time too) or more than ``git_max_checkout_mb`` of files, counting
    as it walks: a bomb stops at the limit, not after walking its billions of paths."""
    size = 0
    budget = limits.max_checkout_mb * MB
    walk = store.iter_tree_contents(tree_id, include_trees=True)
    try:
        next(walk, None)  # the root itself: dest, already there
        for entries, entry in enumerate(walk, 1):
            if entries > limits.max_files:
                raise exceeded("its checkout", limits.max_files, "files", "git_max_files")
            if stat.S_ISREG(entry.mode) or stat.S_ISLNK(entry.mode):
                size += blobs.size(entry.sha)
                if size > budget:
                    raise exceeded(
                        "its checkout", limits.max_checkout_mb, "MB", "git_max_checkout_mb"
                    )
            if entries % 1000 == 0:
                deadline.check()
    except MaxTreeDepthExceeded as exc:
        raise GitError(f"the commit's tree nests too deep: {exc}") from exc


def write_tree(
    repo: Repo,
    tree_id: bytes,
    dest: Path,
    limits: GitLimits,
    deadline: Deadline,
) -> None:
    """Write a tree's files into the empty directory ``dest``, once it is measured
    within ``limits``: modes kept, symlinks kept only when they point inside ``dest``,
    nothing ever written through a symlink."""
    store = repo.object_store
    if not isinstance(store[tree_id], Tree):
        raise GitError(f"{tree_id.decode()} is not a tree")
    blobs = PackedBlobs(store)
    try:
        measure_tree(blobs, store, tree_id, limits, deadline)
        _write_entries(store, blobs, tree_id, os.fsencode(dest), deadline)
    finally:
        blobs.close()


def _write_entries(
    store: BaseObjectStore, blobs: PackedBlobs, tree_id: bytes, base: bytes, deadline: Deadline
) -> None:
    dirs: set[bytes] = {b""}
    taken: set[bytes] = set()
    links: list[bytes] = []
    for entry in store.iter_tree_contents(tree_id):
        deadline.check()
        rel = entry.path
        parts = rel.split(b"/")
        if any(p in (b"", b".", b"..") or p.lower() == b".git" or b"\x00" in p for p in parts):
            raise GitError(f"the commit's tree has an unsafe path {rel!r}")
        parent = b""
        for part in parts[:-1]:
            parent = parent + b"/" + part if parent else part
            if parent in dirs:
                continue
            if parent in taken:
                raise GitError(f"the commit's tree has {parent!r} as both a file and a directory")
            os.mkdir(os.path.join(base, parent))
            dirs.add(parent)
        if rel in dirs or rel in taken:
            raise GitError(f"the commit's tree has {rel!r} twice")
        taken.add(rel)
        target = os.path.join(base, rel)
        mode = entry.mode
        if stat.S_ISLNK(mode):
            link = store[entry.sha].as_raw_string()  # type: ignore[union-attr]
            if _lexically_inside(rel, link):
                os.symlink(link, target)
                links.append(target)
            else:
                log.warning("not creating symlink %s -> %s: it points outside the tree", rel, link)
        elif stat.S_ISDIR(mode) or mode == 0o160000:
            os.mkdir(target)  # a submodule: git leaves an empty directory too
            dirs.add(rel)
        else:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                blobs.write(entry.sha, out)
                os.fchmod(out.fileno(), 0o755 if mode & 0o111 else 0o644)
    _drop_escaping_links(links, os.path.realpath(base))


def _lexically_inside(rel: bytes, link: bytes) -> bool:
    if not link or link.startswith(b"/") or b"\x00" in link:
        return False
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
    return joined != b".." and not joined.startswith(b"../")


def _drop_escaping_links(links: list[bytes], root: bytes) -> None:
    """Links that each stay inside can still escape through one another (a -> b/..);
    remove any that resolves outside, until none does."""
    changed = True
    while changed:
        changed = False
        for link in links:
            if not os.path.lexists(link):
                continue
            real = os.path.realpath(link)
            if real != root and not real.startswith(root + b"/"):
                log.warning("removing symlink %s: it resolves outside the tree", link)
                os.unlink(link)
                changed = True
