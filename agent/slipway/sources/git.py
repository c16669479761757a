"""Git sources through dulwich: which commit is a branch at, and that commit's files.

A Revision of a code service is a commit SHA. ``head`` and ``tags`` ask the remote
for its refs only (ls-remote); ``checkout`` fetches one commit shallowly into a bare
repository in a temporary directory and writes that commit's tree into the build
directory (``git_tree.py``), so no history and no ``.git`` reach a build. A fetch is
bounded (``git_limits.py``): the pack goes to a file as it arrives and is scanned
before dulwich indexes it (``git_pack.py``), the tree is measured before it is written. URLs and ref
names are checked in ``git_names.py``; the errors, and the translation of dulwich's,
urllib3's and socket errors into them, are in ``git_errors.py``. A connection token
travels only in the Authorization header dulwich builds.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
from dulwich.client import (
    GitClient,
    LocalGitClient,
    default_urllib3_manager,
    get_transport_and_path,
)
from dulwich.objects import Commit as GitCommit
from dulwich.objects import ShaFile, Tag
from dulwich.repo import Repo

from ..errors import InvalidRequest
from .git_errors import (
    BranchNotFound,
    CommitNotFound,
    SourceDirectoryNotFound,
    TagNotFound,
    translated,
)
from .git_limits import GitLimits
from .git_names import branch_ref, checkout_ref, display_url, parse_repository_url, ref_label
from .git_pack import Deadline, PackFile, scan_pack
from .git_tree import check_source_directory, parse_source_directory, write_tree

log = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{40}$")
# A SHA the server will not hand out directly is looked for in ever deeper
# fetches of the branch; None is the whole history.
_DEEPEN = (50, 500, None)
_BRANCHES_SHOWN = 10
_TOKEN_USER = "x-access-token"
_TAG_CHAIN = 10  # annotated tags of annotated tags, followed this deep at most


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    message: str
    committed_at: float


class GitSource:
    """Git over smart HTTP(S), SSH and local paths, with one socket timeout for every call."""

    def __init__(
        self,
        timeout: float = 30.0,
        *,
        work_dir: Path | None = None,
        reuse_connections: bool = False,
        limits: GitLimits | None = None,
    ) -> None:
        self.timeout = timeout
        self.limits = limits or GitLimits()
        self.limits.check()
        # Where the temporary bare repository of a checkout lives; None is the system's.
        self.work_dir = work_dir
        # A poller asks the same hosts again and again: with reuse_connections, one urllib3
        # pool per origin is kept across calls, so a poll reuses a kept-alive connection
        # instead of a new TCP (and TLS) handshake. Tokens are sent per request by dulwich,
        # never stored on the pool, so sharing it across connections' tokens is safe.
        self.reuse_connections = reuse_connections
        self._managers: dict[str, Any] = {}
        self._managers_lock = threading.Lock()

    def close(self) -> None:
        """Close the kept connections (reuse_connections); the source stays usable."""
        with self._managers_lock:
            managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            manager.clear()

    def head(self, url: str, branch: str, token: str | None = None) -> str:
        """The SHA ``refs/heads/<branch>`` points at, from the ref advertisement alone."""
        ref = branch_ref(branch)
        client, path = self._client(url, token)
        try:
            with translated(url, token):
                refs = client.get_refs(path, ref_prefix=[b"refs/heads/"]).refs
        finally:
            client.close()
        return _branch_tip(refs, ref, url).decode("ascii")

    def tags(self, url: str, token: str | None = None) -> dict[str, str]:
        """Every tag's name and the commit it names, from the ref advertisement alone.

        Annotated tags are peeled (``refs/tags/v1^{}``) to their commit, so a value is
        always something ``checkout(url, "refs/tags/<name>", dest, sha=value)`` accepts.
        """
        client, path = self._client(url, token)
        try:
            with translated(url, token):
                refs = dict(client.get_refs(path, ref_prefix=[b"refs/tags/"]).refs)
                if isinstance(client, LocalGitClient):
                    _peel_local(path, refs)  # a local repository advertises no peeled values
        finally:
            client.close()
        tags: dict[str, str] = {}
        for name, sha in refs.items():
            if not sha or not name.startswith(b"refs/tags/") or name.endswith(b"^{}"):
                continue
            peeled = refs.get(name + b"^{}") or sha
            tags[name[10:].decode("utf-8", "replace")] = peeled.decode("ascii")
        return tags

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
        """Write the files of the branch's tip, or of commit ``sha``, into ``dest`` (created
        if missing, must be empty); return the commit and ``dest/<source_directory>``.

        ``branch`` may also be a tag, ``refs/tags/<name>`` (a tracked tag's deployment);
        an annotated tag is peeled to its commit. A ``sha`` the server hands out directly
        is taken as it is; one it refuses is searched for in the branch's (or tag's)
        history, so there it must be on the branch or behind the tag.
        """
        ref = checkout_ref(branch)
        subdir = parse_source_directory(source_directory)
        if sha is not None and not _SHA.match(sha):
            raise InvalidRequest(f"commit {sha!r} is not a 40-hex-digit SHA")
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        if any(dest.iterdir()):
            raise ValueError(f"checkout destination {dest} is not empty")
        deadline = Deadline(self.limits.fetch_timeout)
        client, path = self._client(url, token)
        try:
            with tempfile.TemporaryDirectory(prefix="slipway-git-", dir=self.work_dir) as tmp:
                fetch = _Fetch(client, path, self.limits, deadline)
                repo, commit = _fetch_commit(fetch, ref, sha, Path(tmp), url, token)
                try:
                    check_source_directory(repo, commit, subdir)
                    write_tree(repo, commit.tree, dest, self.limits, deadline)
                finally:
                    repo.close()
        finally:
            client.close()
        root = dest.resolve()
        build_root = dest / subdir if subdir else dest
        real = build_root.resolve()
        if not real.is_relative_to(root):
            raise InvalidRequest(
                f"SourceDirectory {source_directory!r} resolves outside the repository"
            )
        if not real.is_dir():
            raise SourceDirectoryNotFound(
                f"SourceDirectory {source_directory!r} is not a directory in commit"
                f" {commit.id.decode()[:12]} of {ref_label(ref)}"
            )
        return _commit_info(commit), build_root

    def _client(self, url: str, token: str | None) -> tuple[GitClient, str]:
        parse_repository_url(url)
        kwargs: dict[str, Any] = {}
        scheme = urlsplit(url).scheme.lower() if "://" in url else "ssh"
        if scheme in ("http", "https"):
            kwargs["pool_manager"] = self._pool_manager(url, scheme)
            if token:
                kwargs.update(username=_TOKEN_USER, password=token)
        elif scheme == "ssh":
            # BatchMode: never wait on a password or host-key prompt.
            kwargs["ssh_command"] = os.environ.get("GIT_SSH_COMMAND") or shlex.join(
                ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, int(self.timeout))}"]
            )
        with translated(url, token):
            return get_transport_and_path(url, **kwargs)

    def _pool_manager(self, url: str, scheme: str) -> Any:
        if not self.reuse_connections:
            return self._new_pool_manager(url, maxsize=1)
        origin = f"{scheme}://{urlsplit(url).netloc.rpartition('@')[2].lower()}"
        with self._managers_lock:
            manager = self._managers.get(origin)
            if manager is None:  # per origin: the proxy (or no_proxy) decision is per host
                manager = self._managers[origin] = self._new_pool_manager(url, maxsize=10)
            return manager

    def _new_pool_manager(self, url: str, *, maxsize: int) -> Any:
        manager = default_urllib3_manager(None, base_url=url, timeout=self.timeout)
        # One reconnect, no read retries: a dead host fails within ~2 timeouts,
        # and redirects (renamed GitHub repositories) are still followed.
        manager.connection_pool_kw["retries"] = urllib3.Retry(
            total=None, connect=1, read=0, status=0, other=0, redirect=5
        )
        # Up to ``maxsize`` idle connections kept per host (one per concurrent caller).
        manager.connection_pool_kw["maxsize"] = maxsize
        return manager


class _Fetch:
    """One bounded fetch into a bare repository, as ``GitClient.fetch`` does it but with
    the pack written to a file as it arrives and scanned before dulwich indexes it."""

    def __init__(self, client: GitClient, path: str, limits: GitLimits, deadline: Deadline):
        self.client = client
        self.path = path
        self.limits = limits
        self.deadline = deadline

    def __call__(self, repo: Repo, wants: Any, depth: int | None) -> None:
        pack = PackFile(Path(repo.path) / "incoming.pack", self.limits, self.deadline)
        try:
            result = self.client.fetch_pack(
                self.path, wants, repo.get_graph_walker(), pack.write, depth=depth
            )
        finally:
            pack.close()
        if pack.size:
            scan_pack(pack.path, self.limits, self.deadline)
            with open(pack.path, "rb") as f:
                repo.object_store.add_thin_pack(f.read, None)
        pack.path.unlink()
        repo.update_shallow(result.new_shallow, result.new_unshallow)


def _fetch_commit(
    fetch: _Fetch,
    ref: bytes,
    sha: str | None,
    tmp: Path,
    url: str,
    token: str | None,
) -> tuple[Repo, GitCommit]:
    """Fetch the commit into a fresh bare repository under ``tmp``; the caller closes it.

    The tip, or a SHA the server hands out directly, costs one depth-1 fetch. A SHA the
    server refuses (git servers without allow-*-sha1-in-want) is looked for in deeper
    fetches of the branch; finding it there also proves it is on the branch.
    """
    want = sha.encode("ascii") if sha else None
    tip: list[bytes] = []

    def branch_tip(refs: Mapping[bytes, bytes], depth: int | None = None) -> list[bytes]:
        tip[:] = [_ref_tip(refs, ref, url)]
        return tip

    def wanted(refs: Mapping[bytes, bytes], depth: int | None = None) -> list[bytes]:
        branch_tip(refs)  # a missing branch is an error even when a SHA is asked for
        return [want or tip[0]]

    attempt = 0

    def fresh_repo() -> Repo:
        nonlocal attempt
        attempt += 1
        return Repo.init_bare(str(tmp / f"fetch-{attempt}"), mkdir=True)

    repo = fresh_repo()
    try:
        with translated(url, token, refusal_ok=want is not None):
            fetch(repo, wanted, 1)
        if want is None:
            return repo, _commit(repo, tip[0], url)
        if want in repo.object_store:
            return repo, _commit(repo, want, url)
    except BaseException:
        repo.close()
        raise
    repo.close()
    log.info("server would not send %s alone; fetching deeper history of %s", sha, ref.decode())
    for depth in _DEEPEN:
        repo = fresh_repo()
        try:
            with translated(url, token):
                fetch(repo, branch_tip, depth)
            if want in repo.object_store:
                return repo, _commit(repo, want, url)
        except BaseException:
            repo.close()
            raise
        repo.close()
    raise CommitNotFound(f"commit {sha} is not on {ref_label(ref)} of {display_url(url)}")


def _commit(repo: Repo, sha: bytes, url: str) -> GitCommit:
    """The commit ``sha`` names, through any annotated tags."""
    obj = _peeled(repo, repo.object_store[sha])
    if not isinstance(obj, GitCommit):
        raise CommitNotFound(f"{sha.decode()} in {display_url(url)} is not a commit")
    return obj


def _commit_info(commit: GitCommit) -> Commit:
    return Commit(
        sha=commit.id.decode("ascii"),
        author=commit.author.decode("utf-8", "replace"),
        message=commit.message.decode("utf-8", "replace").strip(),
        committed_at=float(commit.commit_time),
    )


def _ref_tip(refs: Mapping[bytes, bytes | None], ref: bytes, url: str) -> bytes:
    """What a branch or tag points at (a tag object, for an annotated tag)."""
    if not ref.startswith(b"refs/tags/"):
        return _branch_tip(refs, ref, url)
    sha = refs.get(ref)
    if sha:
        return sha
    names = _ref_names(refs, b"refs/tags/")
    have = "it has no tags" if not names else f"it has {len(names)} tags"
    raise TagNotFound(f"tag {ref[10:].decode()} not found in {display_url(url)}; {have}")


def _peel_local(path: str | bytes, refs: dict[bytes, bytes | None]) -> None:
    """Add the ``^{}`` entries a smart server would have sent, from the repository's objects."""
    with Repo(os.fsdecode(path)) as repo:
        for name, sha in list(refs.items()):
            if not sha or not name.startswith(b"refs/tags/") or name.endswith(b"^{}"):
                continue
            obj = repo.object_store[sha]
            if isinstance(obj, Tag):
                refs[name + b"^{}"] = _peeled(repo, obj).id


def _peeled(repo: Repo, obj: ShaFile) -> ShaFile:
    """The object an annotated tag (or a tag of a tag) finally names; others as they are."""
    for _ in range(_TAG_CHAIN):
        if not isinstance(obj, Tag):
            break
        obj = repo.object_store[obj.object[1]]
    return obj


def _ref_names(refs: Mapping[bytes, bytes | None], prefix: bytes) -> list[str]:
    """The names under ``prefix`` (``refs/heads/``, ``refs/tags/``), sorted, for messages."""
    return sorted(
        r[len(prefix) :].decode("utf-8", "replace")
        for r, v in refs.items()
        if v and r.startswith(prefix) and not r.endswith(b"^{}")
    )


def _branch_tip(refs: Mapping[bytes, bytes | None], ref: bytes, url: str) -> bytes:
    sha = refs.get(ref)
    if sha:
        return sha
    names = _ref_names(refs, b"refs/heads/")
    if not names:
        have = "it has no branches"
    else:
        have = "its branches are " + ", ".join(names[:_BRANCHES_SHOWN])
        if len(names) > _BRANCHES_SHOWN:
            have += f" and {len(names) - _BRANCHES_SHOWN} more"
    raise BranchNotFound(f"branch {ref[11:].decode()} not found in {display_url(url)}; {have}")
