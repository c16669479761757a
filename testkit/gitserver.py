"""A git smart-HTTP server on 127.0.0.1 for tests, and repositories built commit by commit.

``GitServer`` serves bare repositories under a directory with dulwich's WSGI app on a
threaded ``wsgiref`` server, optionally behind HTTP basic auth, and counts what it
sends so tests can check how much a fetch really moved. Commits are made straight
from objects (blobs, trees, commits) with a fixed author and clock, so a test can
give any file a mode or make a symlink, and the same files give the same SHA.

    with GitServer(tmp_path) as server:
        server.create_repo("app", {"app.py": "print()", "run.sh": executable("#!/bin/sh")})
        sha = server.commit("app", {"app.py": "print(2)"}, message="second")
        server.create_branch("app", "dev")
        url = server.url("app")
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import Any
from wsgiref.simple_server import make_server

from dulwich.index import commit_tree
from dulwich.objects import Blob, Commit, ObjectID
from dulwich.repo import Repo
from dulwich.server import DictBackend
from dulwich.web import WSGIRequestHandlerLogger, WSGIServerLogger, make_wsgi_chain

AUTHOR = b"Slipway Test <test@slipway.invalid>"
EPOCH = 1_700_000_000  # commit n of a repository is made at EPOCH + n seconds

FILE = 0o100644
EXECUTABLE = 0o100755
SYMLINK = 0o120000


@dataclass(frozen=True)
class Entry:
    """A file's content and git mode, for when a plain str/bytes (mode 644) is not enough."""

    data: bytes
    mode: int = FILE


def executable(data: str | bytes) -> Entry:
    return Entry(data.encode() if isinstance(data, str) else data, EXECUTABLE)


def symlink(target: str) -> Entry:
    return Entry(target.encode(), SYMLINK)


Files = Mapping[str, "str | bytes | Entry | None"]


@dataclass
class Served:
    """What the server sent: responses by (method, path) and body bytes of upload-packs."""

    requests: list[tuple[str, str, int]] = field(default_factory=list)
    upload_pack_bytes: int = 0

    def clear(self) -> None:
        self.requests.clear()
        self.upload_pack_bytes = 0


class _ThreadingServer(ThreadingMixIn, WSGIServerLogger):
    daemon_threads = True


class GitServer:
    """Bare repositories under ``root`` over smart HTTP on 127.0.0.1:<free port>."""

    def __init__(
        self, root: Path, *, auth: tuple[str, str] | None = None, start: bool = True
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.auth = auth
        self.served = Served()
        self._repos: dict[str, Repo] = {}
        self._clock: dict[str, int] = {}
        self._backend = DictBackend({})
        self._lock = threading.Lock()
        self._server: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # -- serving -----------------------------------------------------------------

    def start(self) -> None:
        app = make_wsgi_chain(self._backend)
        self._server = make_server(
            "127.0.0.1",
            0,
            self._middleware(app),
            server_class=_ThreadingServer,
            handler_class=WSGIRequestHandlerLogger,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="gitserver",
            daemon=True,
        )
        self._thread.start()

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return int(self._server.server_port)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for repo in self._repos.values():
            repo.close()
        self._repos.clear()

    def __enter__(self) -> GitServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _middleware(self, app: Any) -> Any:
        """Basic auth (401 without credentials, 403 with wrong ones) and byte counting.
        ``auth`` is read per request, so a test can change (revoke) it while serving."""

        def wrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
            expected = None
            if self.auth is not None:
                pair = f"{self.auth[0]}:{self.auth[1]}".encode()
                expected = "Basic " + base64.b64encode(pair).decode()
            if expected is not None:
                given = environ.get("HTTP_AUTHORIZATION")
                if given != expected:
                    status = "403 Forbidden" if given else "401 Unauthorized"
                    with self._lock:
                        self.served.requests.append((method, path, int(status[:3])))
                    start_response(
                        status,
                        [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Type", "text/plain")],
                    )
                    return [b"authentication required\n"]
            codes: list[int] = []
            sent = [0]

            def recording_start(status: str, headers: Any, exc_info: Any = None) -> Any:
                codes.append(int(status[:3]))
                write = start_response(status, headers, exc_info)

                def counting_write(data: bytes) -> Any:
                    sent[0] += len(data)  # dulwich streams packs through write()
                    return write(data)

                return counting_write

            return self._count(app(environ, recording_start), method, path, codes, sent)

        return wrapped

    def _count(
        self, body: Iterable[bytes], method: str, path: str, codes: list[int], sent: list[int]
    ) -> Iterator[bytes]:
        failed = False
        try:
            for chunk in body:
                sent[0] += len(chunk)
                yield chunk
        except Exception:
            failed = True  # wsgiref answers 500 in place of the status the app set
            raise
        finally:
            code = 500 if failed else (codes[-1] if codes else 0)
            with self._lock:
                self.served.requests.append((method, path, code))
                if path.endswith("/git-upload-pack"):
                    self.served.upload_pack_bytes += sent[0]

    # -- repositories ------------------------------------------------------------

    def repo(self, name: str) -> Repo:
        return self._repos[name]

    def create_repo(
        self, name: str, files: Files | None = None, *, branch: str = "main", message: str = "init"
    ) -> str | None:
        """A bare repository served as /<name>; with ``files``, its first commit on ``branch``."""
        path = self.root / f"{name}.git"
        path.mkdir(parents=True)
        repo = Repo.init_bare(str(path))
        repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/" + branch.encode())
        self._repos[name] = repo
        self._clock[name] = 0
        self._backend.repos[f"/{name}"] = repo
        if files is None:
            return None
        return self.commit(name, files, branch=branch, message=message)

    def commit(
        self, name: str, files: Files, *, branch: str = "main", message: str = "change"
    ) -> str:
        """A commit on ``branch`` whose tree is its parent's with ``files`` applied
        (a value of None deletes that path); returns its SHA."""
        repo = self._repos[name]
        ref = b"refs/heads/" + branch.encode()
        parent = _tip(repo, ref)
        entries: dict[bytes, tuple[ObjectID, int]] = {}
        if parent is not None:
            tree = repo[parent].tree  # type: ignore[attr-defined]
            for entry in repo.object_store.iter_tree_contents(tree):
                entries[entry.path] = (entry.sha, entry.mode)
        for path, value in files.items():
            key = path.encode()
            if value is None:
                entries.pop(key, None)
                continue
            item = value if isinstance(value, Entry) else Entry(_bytes(value))
            blob = Blob.from_string(item.data)
            repo.object_store.add_object(blob)
            entries[key] = (blob.id, item.mode)
        tree_id = commit_tree(repo.object_store, [(p, s, m) for p, (s, m) in entries.items()])
        return self.commit_tree(name, tree_id, branch=branch, message=message)

    def commit_tree(
        self, name: str, tree_id: bytes, *, branch: str = "main", message: str = "change"
    ) -> str:
        """A commit of a tree the test built itself (for trees no honest git would make)."""
        repo = self._repos[name]
        ref = b"refs/heads/" + branch.encode()
        self._clock[name] += 1
        commit = Commit()
        commit.tree = tree_id
        parent = _tip(repo, ref)
        commit.parents = [parent] if parent else []
        commit.author = commit.committer = AUTHOR
        commit.author_time = commit.commit_time = EPOCH + self._clock[name]
        commit.author_timezone = commit.commit_timezone = 0
        commit.message = message.encode() + b"\n"
        repo.object_store.add_object(commit)
        repo.refs[ref] = commit.id
        return commit.id.decode()

    def create_branch(self, name: str, branch: str, *, start: str = "main") -> str:
        """``branch`` at the tip of branch ``start`` (or at the commit SHA ``start``)."""
        repo = self._repos[name]
        sha = _tip(repo, b"refs/heads/" + start.encode()) or start.encode()
        repo.refs[b"refs/heads/" + branch.encode()] = sha
        return sha.decode()

    def tag(self, name: str, tag: str, sha: str) -> None:
        """A lightweight tag: the server then advertises ``sha`` and hands it out alone."""
        self._repos[name].refs[b"refs/tags/" + tag.encode()] = sha.encode()


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _tip(repo: Repo, ref: bytes) -> ObjectID | None:
    try:
        return repo.refs[ref]
    except KeyError:
        return None
