"""In-memory sources for unit tests: git branches as file trees, and registry tags."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import ImageNotFound
from .git import Commit
from .git_errors import BranchNotFound


class FakeGit:
    """Branches to file trees; each tree's commit SHA is derived from its content."""

    def __init__(self) -> None:
        self.branches: dict[str, dict[str, str]] = {}

    def _sha(self, branch: str) -> str:
        return hashlib.sha1(repr(sorted(self.branches[branch].items())).encode()).hexdigest()

    def head(self, url: str, branch: str, token: str | None = None) -> str:
        branch = branch.removeprefix("refs/heads/")
        if branch not in self.branches:
            raise BranchNotFound(f"branch {branch} not found")
        return self._sha(branch)

    def checkout(
        self,
        url: str,
        branch: str,
        dest: Path,
        *,
        sha: str | None = None,
        source_directory: str | None = None,
        token: str | None = None,
    ) -> tuple[Commit, Path]:
        head = self.head(url, branch)
        for name, text in self.branches[branch.removeprefix("refs/heads/")].items():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_text(text)
        commit = Commit(sha=sha or head, author="A <a@x>", message="change", committed_at=0.0)
        return commit, dest / (source_directory or "")


class FakeRegistry:
    """Tags to digests, as the image resolver answers; an unknown tag is not found."""

    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = dict(tags)

    def __call__(self, identifier: str, repository_type: str) -> str:
        if identifier not in self.tags:
            raise ImageNotFound(f"image {identifier} not found")
        return self.tags[identifier]
