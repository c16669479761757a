"""A git bomb: a commit of a few KB whose checkout is huge, for tests of the fetch limits.

One blob is named ``width`` times by a tree, that tree ``width`` times by the next, and so
on ``levels`` deep: ``width ** levels`` files of ``blob_size`` bytes from ``levels + 2``
objects, the way the classic git bomb fills a disk (and a naive checkout's memory).
"""

from __future__ import annotations

from dulwich.objects import Blob, Tree
from dulwich.repo import Repo

from .gitserver import FILE

DIRECTORY = 0o040000


def bomb_tree(repo: Repo, *, levels: int, width: int, blob_size: int | None) -> bytes:
    """Add the bomb's objects to ``repo``; return its root tree's id. With ``blob_size``
    None its leaves are empty directories: no byte to write, only paths to walk."""
    leaf: Blob | Tree = Tree() if blob_size is None else Blob.from_string(b"\0" * blob_size)
    repo.object_store.add_object(leaf)
    sha, mode = leaf.id, DIRECTORY if blob_size is None else FILE
    for _ in range(levels):
        tree = Tree()
        for i in range(width):
            tree.add(f"d{i}".encode() if mode == DIRECTORY else f"f{i}".encode(), mode, sha)
        repo.object_store.add_object(tree)
        sha, mode = tree.id, DIRECTORY
    return sha
