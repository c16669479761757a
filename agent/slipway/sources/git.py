"""Git sources through dulwich: which commit is a branch at, and that commit's files.

A Revision of a code service is a commit SHA. ``head`` and ``tags`` ask the remote
for its refs only (ls-remote); ``checkout`` fetches one commit shallowly into a bare
repository in a temporary directory and writes that commit's tree into the build
directory, so no history and no ``.git`` reach a build. The errors this module raises:

    SlipwayError
    └── GitError                   (terminal: retrying will not help)
        ├── GitUnreachable         (passing: refused, reset, timed out, 5xx)
        ├── GitAuthFailed          (401/403, ssh permission denied)
        ├── RepositoryNotFound     (404, not a repository)
        ├── BranchNotFound
        ├── TagNotFound
        ├── CommitNotFound         (a SHA that is not on the branch or behind the tag)
        └── SourceDirectoryNotFound

Dulwich, urllib3 and socket errors are translated only here (``_translated``).
A connection token travels only in the Authorization header dulwich builds; every
message names the repository by a URL without credentials, and any text taken
from a foreign error has the token masked.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import shlex
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import urllib3
import urllib3.exceptions
from dulwich.client import (
    GitClient,
    HTTPProxyUnauthorized,
    HTTPUnauthorized,
    LocalGitClient,
    default_urllib3_manager,
    get_transport_and_path,
)
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository, NotTreeError
from dulwich.object_store import tree_lookup_path
from dulwich.objects import Commit as GitCommit
from dulwich.objects import ShaFile, SubmoduleEncountered, Tag, Tree
from dulwich.repo import Repo

from ..errors import InvalidRequest, SlipwayError

log = logging.getLogger(__name__)

_SHA = re.compile(r"^[0-9a-f]{40}$")
_SCP_LIKE = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+):(?P<path>.+)$")
_HTTP_STATUS = re.compile(r"unexpected http resp (\d{3})")
_SCHEMES = ("https", "http", "ssh", "file")
# A SHA the server will not hand out directly is looked for in ever deeper
# fetches of the branch; None is the whole history.
_DEEPEN = (50, 500, None)
_BRANCHES_SHOWN = 10
_TOKEN_USER = "x-access-token"
_TAG_CHAIN = 10  # annotated tags of annotated tags, followed this deep at most


class GitError(SlipwayError):
    """A repository could not give us a commit; ``terminal`` says whether retrying helps."""

    terminal = True


class GitUnreachable(GitError):
    terminal = False


class GitAuthFailed(GitError):
    pass


class RepositoryNotFound(GitError):
    pass


class BranchNotFound(GitError):
    pass


class TagNotFound(GitError):
    pass


class CommitNotFound(GitError):
    pass


class SourceDirectoryNotFound(GitError):
    pass


@dataclass(frozen=True)
class Commit:
    sha: str
    author: str
    message: str
    committed_at: float


def parse_repository_url(url: str) -> str:
    """Check a RepositoryUrl's form up front, so a bad one is refused before it is stored.

    Accepts ``https://``, ``http://``, ``ssh://``, ``file:///abs/path`` and scp-like
    ``user@host:path``. Credentials in the URL are refused: they would be stored and
    shown wherever the service is described; a connection carries them instead.
    """

    def bad(why: str) -> InvalidRequest:
        return InvalidRequest(f"RepositoryUrl {_display_url(url)!r} is not valid: {why}")

    if not url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise bad("it is empty or contains whitespace or control characters")
    if "://" not in url:
        scp = _SCP_LIKE.match(url)
        if not scp or scp["host"].startswith("-") or url.startswith("-"):
            raise bad("use https://host/path, ssh://git@host/path, git@host:path or file:///path")
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise bad("it cannot be parsed as a URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise bad(f"scheme {parts.scheme!r} is not supported; use one of {', '.join(_SCHEMES)}")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise bad("a file URL names an absolute local path, file:///path/to/repo")
        return url
    if not parts.hostname or parts.hostname.startswith("-"):
        raise bad("the host is missing")
    if parts.password is not None or (scheme != "ssh" and parts.username is not None):
        raise InvalidRequest(
            f"RepositoryUrl {_display_url(url)!r} must not contain credentials;"
            " use a connection (SourceConfiguration.AuthenticationConfiguration.ConnectionArn)"
        )
    if port == 0:
        raise bad("port 0 is not a port")
    # Smart HTTP may serve a repository at a host's root; ssh and GitHub need a path.
    if parts.path.strip("/") == "" and (scheme == "ssh" or parts.hostname == "github.com"):
        raise bad("it names no repository path")
    return url


class GitSource:
    """Git over smart HTTP(S), SSH and local paths, with one socket timeout for every call."""

    def __init__(
        self,
        timeout: float = 30.0,
        *,
        work_dir: Path | None = None,
        reuse_connections: bool = False,
    ) -> None:
        self.timeout = timeout
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
        ref = _branch_ref(branch)
        client, path = self._client(url, token)
        try:
            with _translated(url, token):
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
            with _translated(url, token):
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
        ref = _checkout_ref(branch)
        subdir = _source_directory(source_directory)
        if sha is not None and not _SHA.match(sha):
            raise InvalidRequest(f"commit {sha!r} is not a 40-hex-digit SHA")
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        if any(dest.iterdir()):
            raise ValueError(f"checkout destination {dest} is not empty")
        client, path = self._client(url, token)
        try:
            with tempfile.TemporaryDirectory(prefix="slipway-git-", dir=self.work_dir) as tmp:
                repo, commit = _fetch_commit(client, path, ref, sha, Path(tmp), url, token)
                try:
                    _check_source_directory(repo, commit, subdir)
                    _write_tree(repo, commit.tree, dest)
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
                f" {commit.id.decode()[:12]} of {_ref_label(ref)}"
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
        with _translated(url, token):
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


def _fetch_commit(
    client: GitClient,
    path: str,
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
        with _translated(url, token, refusal_ok=want is not None):
            client.fetch(path, repo, determine_wants=wanted, depth=1)
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
            with _translated(url, token):
                client.fetch(path, repo, determine_wants=branch_tip, depth=depth)
            if want in repo.object_store:
                return repo, _commit(repo, want, url)
        except BaseException:
            repo.close()
            raise
        repo.close()
    raise CommitNotFound(f"commit {sha} is not on {_ref_label(ref)} of {_display_url(url)}")


def _commit(repo: Repo, sha: bytes, url: str) -> GitCommit:
    """The commit ``sha`` names, through any annotated tags."""
    obj = _peeled(repo, repo.object_store[sha])
    if not isinstance(obj, GitCommit):
        raise CommitNotFound(f"{sha.decode()} in {_display_url(url)} is not a commit")
    return obj


def _commit_info(commit: GitCommit) -> Commit:
    return Commit(
        sha=commit.id.decode("ascii"),
        author=commit.author.decode("utf-8", "replace"),
        message=commit.message.decode("utf-8", "replace").strip(),
        committed_at=float(commit.commit_time),
    )


def _branch_ref(branch: str) -> bytes:
    name = branch.removeprefix("refs/heads/")
    if not name or any(c.isspace() for c in name) or ".." in name or name.startswith("-"):
        raise InvalidRequest(f"branch {branch!r} is not a valid branch name")
    return b"refs/heads/" + name.encode("utf-8")


def _checkout_ref(name: str) -> bytes:
    """A branch name (or ``refs/heads/<b>``) or ``refs/tags/<t>`` as a full ref."""
    if not name.startswith("refs/tags/"):
        return _branch_ref(name)
    tag = name[10:]
    if not tag or any(c.isspace() for c in tag) or ".." in tag or tag.startswith("-"):
        raise InvalidRequest(f"tag {tag!r} is not a valid tag name")
    return name.encode("utf-8")


def _ref_label(ref: bytes) -> str:
    """``branch main`` or ``tag v1.2.0``, for messages."""
    if ref.startswith(b"refs/tags/"):
        return "tag " + ref[10:].decode("utf-8", "replace")
    return "branch " + ref[11:].decode("utf-8", "replace")


def _ref_tip(refs: Mapping[bytes, bytes | None], ref: bytes, url: str) -> bytes:
    """What a branch or tag points at (a tag object, for an annotated tag)."""
    if not ref.startswith(b"refs/tags/"):
        return _branch_tip(refs, ref, url)
    sha = refs.get(ref)
    if sha:
        return sha
    names = _ref_names(refs, b"refs/tags/")
    have = "it has no tags" if not names else f"it has {len(names)} tags"
    raise TagNotFound(f"tag {ref[10:].decode()} not found in {_display_url(url)}; {have}")


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
    raise BranchNotFound(f"branch {ref[11:].decode()} not found in {_display_url(url)}; {have}")


def _source_directory(value: str | None) -> PurePosixPath | None:
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


def _check_source_directory(repo: Repo, commit: GitCommit, subdir: PurePosixPath | None) -> None:
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


def _write_tree(repo: Repo, tree_id: bytes, dest: Path) -> None:
    """Write a tree's files into the empty directory ``dest``: modes kept, symlinks kept
    only when they point inside ``dest``, nothing ever written through a symlink."""
    store = repo.object_store
    if not isinstance(store[tree_id], Tree):
        raise GitError(f"{tree_id.decode()} is not a tree")
    base = os.fsencode(dest)
    dirs: set[bytes] = {b""}
    taken: set[bytes] = set()
    links: list[bytes] = []
    for entry in store.iter_tree_contents(tree_id):
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
            blob = store[entry.sha]
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                for chunk in blob.as_raw_chunks():
                    out.write(chunk)
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


def _display_url(url: str) -> str:
    """The URL without any password or token, for messages and logs."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if "@" not in parts.netloc:
        return url
    user = f"{parts.username}@" if parts.scheme == "ssh" and parts.username else ""
    netloc = f"{user}{host}" + (f":{port}" if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _masked(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


@contextmanager
def _translated(url: str, token: str | None, *, refusal_ok: bool = False) -> Iterator[None]:
    """Turn dulwich, urllib3 and socket errors into GitError subclasses.

    With ``refusal_ok`` a server's refusal (an error it answered with, not a transport
    failure) is swallowed: the caller has another way to get what it asked for.
    """
    try:
        yield
    except GitError:
        raise
    except Exception as exc:
        if refusal_ok and _is_refusal(exc):
            log.debug("server refused: %s", _masked(str(exc), token))
            return
        error = _translate(exc, _display_url(url), token)
        if error is None:
            raise
        raise error from exc


def _is_refusal(exc: Exception) -> bool:
    if isinstance(exc, KeyError):  # a local repository that lacks the object
        return True
    if not isinstance(exc, GitProtocolError) or isinstance(exc, HangupException):
        return False
    if isinstance(exc.__cause__, urllib3.exceptions.HTTPError | OSError):
        return False
    status = _HTTP_STATUS.search(str(exc))
    return status is None or status.group(1) not in ("401", "403", "404")


def _translate(exc: Exception, where: str, token: str | None) -> GitError | None:
    """The GitError for a foreign exception, or None for one that is not ours to translate."""
    raw = str(exc).strip()  # classified as is; only masked text goes into a message
    if isinstance(exc, HTTPProxyUnauthorized):
        return GitAuthFailed(f"the HTTP proxy refused to carry the request to {where}")
    if isinstance(exc, HTTPUnauthorized):
        hint = "the connection's token was refused" if token else "it needs a connection"
        return GitAuthFailed(f"{where} requires authentication: {hint}")
    if isinstance(exc, NotGitRepository):
        return RepositoryNotFound(
            f"repository {where} not found (or private and the connection cannot read it)"
        )
    if isinstance(exc, HangupException):
        return _from_ssh_stderr(raw, where, token)
    if isinstance(exc, GitProtocolError):
        cause = exc.__cause__
        if isinstance(cause, urllib3.exceptions.HTTPError | OSError):
            return _unreachable(cause, where, token)
        status = _HTTP_STATUS.search(raw)
        code = int(status.group(1)) if status else 0
        if code in (401, 403):
            return GitAuthFailed(f"{where} refused access (HTTP {code})")
        if code == 404:
            return RepositoryNotFound(f"repository {where} not found (HTTP 404)")
        if code == 429 or code >= 500:
            return GitUnreachable(f"{where} answered HTTP {code}; will retry")
        if status:
            return GitError(f"{where} answered HTTP {code}")
        return GitError(f"{where}: {_redact_urls(_masked(raw, token))}")
    if isinstance(exc, FileNotFoundError):
        return GitError(f"cannot reach {where}: {exc.strerror}: {exc.filename}")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return _unreachable(exc, where, token)
    return None


def _unreachable(exc: BaseException, where: str, token: str | None) -> GitUnreachable:
    reason: Any = getattr(exc, "reason", None) or exc
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = "connection failed"
    elif isinstance(reason, urllib3.exceptions.TimeoutError | TimeoutError):
        text = "timed out"
    elif isinstance(reason, urllib3.exceptions.SSLError):
        text = f"TLS failed ({_masked(str(reason), token)})"
        return GitUnreachable(f"cannot reach {where}: {text}")
    else:
        text = type(reason).__name__
    inner = getattr(reason, "__context__", None) or getattr(reason, "__cause__", None)
    if isinstance(inner, OSError) and inner.strerror:
        text += f" ({inner.strerror})"
    elif isinstance(reason, OSError) and reason.strerror:
        text += f" ({reason.strerror})"
    return GitUnreachable(_masked(f"cannot reach {where}: {text}", token))


def _from_ssh_stderr(stderr: str, where: str, token: str | None) -> GitError:
    """An SSH server (or the ssh client) hung up; its stderr says why."""
    lowered = stderr.lower()
    last = _redact_urls(_masked(stderr.splitlines()[-1], token)) if stderr else "hung up"
    if "permission denied" in lowered or "host key verification failed" in lowered:
        return GitAuthFailed(f"{where} refused access: {last}")
    if "not found" in lowered or "does not appear to be a git repository" in lowered:
        return RepositoryNotFound(f"repository {where} not found: {last}")
    return GitUnreachable(f"cannot reach {where}: {last}")


def _redact_urls(text: str) -> str:
    """Credentials in any URL a foreign message quotes become ***."""
    return re.sub(r"(\w+://)[^/@\s]*@", r"\1***@", text)
