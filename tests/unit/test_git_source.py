"""GitSource against real git servers: dulwich's smart HTTP on loopback, and file:// repos."""

from __future__ import annotations

import os
import socket
import stat
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.client import HTTPUnauthorized
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.objects import Blob, Tree

from slipway.errors import InvalidRequest
from slipway.sources import git_errors
from slipway.sources.git import GitSource
from slipway.sources.git_errors import (
    BranchNotFound,
    CommitNotFound,
    GitAuthFailed,
    GitError,
    GitUnreachable,
    RepositoryNotFound,
    SourceDirectoryNotFound,
)
from slipway.sources.git_names import parse_repository_url
from testkit.gitserver import EPOCH, GitServer, executable, symlink

TOKEN = "ghp_PLANTEDtoken0123456789abcdefghijklmnop"
APP = {
    "app.py": "print('hello')\n",
    "run.sh": executable("#!/bin/sh\nexec python app.py\n"),
    "web/index.html": "<h1>hi</h1>\n",
    "web/static/app.css": "body {}\n",
    "latest": symlink("web/index.html"),
    "web/up": symlink("../app.py"),
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "served") as srv:
        yield srv


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def git(work: Path) -> GitSource:
    return GitSource(timeout=5, work_dir=work)


def everything_said(exc: BaseException) -> str:
    """The whole chain as a traceback would print it, causes included."""
    return "".join(traceback.format_exception(exc))


# -- head ------------------------------------------------------------------------


def test_head_is_the_branch_tip_and_fetches_no_objects(server: GitServer, git: GitSource) -> None:
    server.create_repo("app", APP)
    tip = server.commit("app", {"app.py": "print(2)\n"})
    server.create_branch("app", "dev")
    dev_tip = server.commit("app", {"app.py": "print(3)\n"}, branch="dev")
    server.served.clear()

    assert git.head(server.url("app"), "main") == tip
    assert git.head(server.url("app"), "refs/heads/dev") == dev_tip
    assert all(path.endswith("/info/refs") for _, path, _ in server.served.requests)


def test_missing_branch_names_it_and_lists_ten_branches(server: GitServer, git: GitSource) -> None:
    server.create_repo("app", APP)
    for n in range(12):
        server.create_branch("app", f"feature-{n:02d}")

    with pytest.raises(BranchNotFound) as caught:
        git.head(server.url("app"), "mian")
    message = caught.value.message
    assert caught.value.terminal
    assert "branch mian not found" in message
    assert "feature-00" in message and "feature-09" in message
    assert "feature-10" not in message and "and 3 more" in message  # 13 branches, 10 shown


def test_head_and_checkout_of_a_local_file_url(tmp_path: Path, git: GitSource) -> None:
    server = GitServer(tmp_path / "local", start=False)
    try:
        tip = server.create_repo("app", APP)
        url = f"file://{tmp_path / 'local' / 'app.git'}"
        assert git.head(url, "main") == tip
        commit, root = git.checkout(url, "main", tmp_path / "src")
        assert commit.sha == tip
        assert (root / "web" / "index.html").read_text() == "<h1>hi</h1>\n"
    finally:
        server.stop()


# -- checkout --------------------------------------------------------------------


def test_checkout_writes_the_tree_with_modes_and_symlinks(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    sha = server.create_repo("app", APP, message="first commit\n\nwith a body")
    old_umask = os.umask(0o077)  # the modes written must not depend on the agent's umask
    try:
        commit, root = git.checkout(server.url("app"), "main", tmp_path / "src")
    finally:
        os.umask(old_umask)

    assert root == tmp_path / "src"
    assert commit.sha == sha
    assert commit.author == "Slipway Test <test@slipway.invalid>"
    assert commit.message == "first commit\n\nwith a body"
    assert commit.committed_at == float(EPOCH + 1)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "app.py",
        "latest",
        "run.sh",
        "web",
        "web/index.html",
        "web/static",
        "web/static/app.css",
        "web/up",
    ]
    assert stat.S_IMODE((root / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "app.py").stat().st_mode) == 0o644
    assert os.readlink(root / "latest") == "web/index.html"
    assert (root / "web" / "up").read_text() == "print('hello')\n"
    assert not (root / ".git").exists()


def test_checkout_of_an_older_sha_the_server_will_not_hand_out(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    first = server.create_repo("app", APP)
    for n in range(3):
        server.commit("app", {"app.py": f"print({n})\n"})
    server.served.clear()

    commit, root = git.checkout(server.url("app"), "main", tmp_path / "src", sha=first)

    assert commit.sha == first
    assert (root / "app.py").read_text() == "print('hello')\n"
    # dulwich's server refuses a want it did not advertise (HTTP 500); the deeper fetch
    # of the branch found the commit.
    assert [code for _, path, code in server.served.requests if "upload-pack" in path] == [500, 200]


def test_checkout_of_a_sha_the_server_hands_out_fetches_only_that_commit(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    first = server.create_repo("app", {"big.bin": os.urandom(20_000)})
    for _ in range(10):
        server.commit("app", {"big.bin": os.urandom(20_000)})
    server.tag("app", "v1", first)  # advertised now, so a depth-1 fetch of it is allowed
    server.served.clear()

    commit, _ = git.checkout(server.url("app"), "main", tmp_path / "src", sha=first)

    assert commit.sha == first
    assert 20_000 < server.served.upload_pack_bytes < 2 * 20_000  # one commit's blob
    assert [code for _, path, code in server.served.requests if "upload-pack" in path] == [200]


def test_a_sha_that_is_not_on_the_branch_is_terminal(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    server.create_repo("app", APP)
    with pytest.raises(CommitNotFound) as caught:
        git.checkout(server.url("app"), "main", tmp_path / "src", sha="1" * 40)
    assert caught.value.terminal and "1111111111" in caught.value.message
    with pytest.raises(InvalidRequest):
        git.checkout(server.url("app"), "main", tmp_path / "src2", sha="HEAD~1")


def test_shallow_checkout_moves_only_the_tip(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    server.create_repo("app", {"big.bin": os.urandom(20_000)})
    for n in range(49):
        tip = server.commit("app", {"big.bin": os.urandom(20_000), f"f{n}": str(n)})
    server.served.clear()

    commit, root = git.checkout(server.url("app"), "main", tmp_path / "src")

    assert commit.sha == tip
    assert len(list(root.iterdir())) == 50
    # 50 commits of 20 kB of noise is 1 MB of history; the tip's tree is ~20 kB.
    assert 20_000 < server.served.upload_pack_bytes < 2 * 20_000


def test_source_directory_is_the_build_root(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    server.create_repo(
        "app", {**APP, "services/api/main.py": "x", "services/web": symlink("../web")}
    )
    url = server.url("app")

    _, root = git.checkout(url, "main", tmp_path / "a", source_directory="services/api")
    assert root == tmp_path / "a" / "services" / "api"
    assert (root / "main.py").read_text() == "x"
    assert (tmp_path / "a" / "app.py").exists()  # the whole tree is there, root is a part
    # The service model: SourceDirectory "is absolute from root".
    _, root = git.checkout(url, "main", tmp_path / "b", source_directory="/services/api/")
    assert root == tmp_path / "b" / "services" / "api"
    for n, value in enumerate(["/", "", None]):
        _, root = git.checkout(url, "main", tmp_path / f"c{n}", source_directory=value)
        assert root == tmp_path / f"c{n}"
    _, root = git.checkout(url, "main", tmp_path / "d", source_directory="services/web")
    assert (root / "index.html").exists()  # through an in-tree symlink


@pytest.mark.parametrize("bad", ["../other", "app/../../x", "..", "a/.git", "a\x00b"])
def test_source_directory_outside_the_repository_is_refused_before_fetching(
    server: GitServer, git: GitSource, tmp_path: Path, bad: str
) -> None:
    server.create_repo("app", APP)
    server.served.clear()
    with pytest.raises(InvalidRequest, match="SourceDirectory"):
        git.checkout(server.url("app"), "main", tmp_path / "src", source_directory=bad)
    assert server.served.requests == []


def test_source_directory_through_a_symlink_out_of_the_tree_is_refused(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    server.create_repo("app", {**APP, "escape": symlink("/etc")})
    with pytest.raises(SourceDirectoryNotFound, match="escape"):
        git.checkout(server.url("app"), "main", tmp_path / "src", source_directory="escape")


@pytest.mark.parametrize("missing", ["nope", "web/nope", "app.py"])
def test_missing_source_directory_is_terminal_and_named(
    server: GitServer, git: GitSource, tmp_path: Path, missing: str
) -> None:
    server.create_repo("app", APP)
    with pytest.raises(SourceDirectoryNotFound) as caught:
        git.checkout(server.url("app"), "main", tmp_path / "src", source_directory=missing)
    assert caught.value.terminal and repr(missing) in caught.value.message
    assert not any((tmp_path / "src").iterdir())  # refused before writing anything


def test_symlinks_out_of_the_tree_are_not_created(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    server.create_repo(
        "app",
        {
            "app.py": "x",
            "passwd": symlink("/etc/passwd"),
            "up": symlink("../../outside"),
            "d/deep": symlink("../.."),
            "d/x/ok": symlink("../../app.py"),
            "hop": symlink("d/x"),
            "climb": symlink("hop/../.."),
            "hop2": symlink("d/x/.."),
            # Each stays inside on its own (top is the root); together they climb out.
            "d/x/top": symlink("../.."),
            "sneak": symlink("d/x/top/.."),
        },
    )
    _, root = git.checkout(server.url("app"), "main", tmp_path / "src")
    names = {str(p.relative_to(root)) for p in root.rglob("*")}
    assert names == {"app.py", "d", "d/x", "d/x/ok", "d/x/top", "hop", "hop2"}
    assert (root / "d" / "x" / "ok").read_text() == "x"
    for path in root.rglob("*"):
        assert path.resolve().is_relative_to(root.resolve())


def test_a_tree_with_unsafe_names_is_refused_and_writes_nothing_outside(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    server.create_repo("app", APP)
    repo = server.repo("app")
    blob = Blob.from_string(b"owned")
    inner = Tree()
    inner.add(b"pwned", 0o100644, blob.id)
    tree = Tree()
    tree.add(b"..", 0o040000, inner.id)
    for obj in (blob, inner, tree):
        repo.object_store.add_object(obj)
    server.commit_tree("app", tree.id, branch="evil")

    with pytest.raises(GitError, match="unsafe path") as caught:
        git.checkout(server.url("app"), "evil", tmp_path / "box" / "src")
    assert caught.value.terminal
    assert not (tmp_path / "box" / "pwned").exists()


def test_checkout_wants_an_empty_destination(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    server.create_repo("app", APP)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "leftover").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        git.checkout(server.url("app"), "main", tmp_path / "src")


# -- failures --------------------------------------------------------------------


def test_unreachable_host_is_passing(git: GitSource, tmp_path: Path) -> None:
    with pytest.raises(GitUnreachable) as caught:
        git.head("http://127.0.0.1:1/app", "main")
    assert caught.value.terminal is False
    assert "http://127.0.0.1:1/app" in caught.value.message
    assert "Connection refused" in caught.value.message
    with pytest.raises(GitUnreachable):
        git.checkout("http://127.0.0.1:1/app", "main", tmp_path / "src")


def test_a_server_that_never_answers_times_out(work: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/app"
        started = time.monotonic()
        with pytest.raises(GitUnreachable, match="timed out") as caught:
            GitSource(timeout=0.3, work_dir=work).head(url, "main")
    assert caught.value.terminal is False
    assert time.monotonic() - started < 3


def test_missing_repository_is_terminal(server: GitServer, git: GitSource, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound) as caught:
        git.head(server.url("nothing-here"), "main")
    assert caught.value.terminal
    with pytest.raises(RepositoryNotFound):
        git.checkout(f"file://{tmp_path}/nothing", "main", tmp_path / "src")


def test_token_is_sent_as_basic_auth(tmp_path: Path, git: GitSource) -> None:
    with GitServer(tmp_path / "private", auth=("x-access-token", TOKEN)) as server:
        tip = server.create_repo("app", APP)
        url = server.url("app")
        assert git.head(url, "main", token=TOKEN) == tip
        commit, root = git.checkout(url, "main", tmp_path / "src", token=TOKEN)
        assert commit.sha == tip and (root / "app.py").exists()

        with pytest.raises(GitAuthFailed) as missing:
            git.head(url, "main")
        assert missing.value.terminal and "needs a connection" in missing.value.message
        for wrong_token in ("ghp_wrong", "x"):  # "x" is also in the text of dulwich's error
            with pytest.raises(GitAuthFailed) as wrong:
                git.checkout(url, "main", tmp_path / "src2", token=wrong_token)
            assert wrong.value.terminal and "HTTP 403" in wrong.value.message


def test_the_token_never_appears_in_errors(
    tmp_path: Path, git: GitSource, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    failures: list[BaseException] = []
    with GitServer(tmp_path / "private", auth=("x-access-token", "other")) as server:
        server.create_repo("app", APP)
        for call in (
            lambda: git.head(server.url("app"), "main", token=TOKEN),
            lambda: git.checkout(server.url("app"), "main", tmp_path / "a", token=TOKEN),
        ):
            with pytest.raises(GitAuthFailed) as caught:
                call()
            failures.append(caught.value)
    with GitServer(tmp_path / "open") as server:
        server.create_repo("app", APP)
        for call in (
            lambda: git.head(server.url("app"), "nope", token=TOKEN),
            lambda: git.head(server.url("gone"), "main", token=TOKEN),
            lambda: git.checkout(
                server.url("app"), "main", tmp_path / "b", sha="2" * 40, token=TOKEN
            ),
        ):
            with pytest.raises(GitError) as caught:
                call()
            failures.append(caught.value)
    with pytest.raises(GitUnreachable) as caught:
        git.head("http://127.0.0.1:1/app", "main", token=TOKEN)
    failures.append(caught.value)

    for exc in failures:
        assert TOKEN not in everything_said(exc)
    assert TOKEN not in caplog.text


def test_no_temp_dirs_are_left_behind(
    server: GitServer, git: GitSource, work: Path, tmp_path: Path
) -> None:
    server.create_repo("app", APP)
    url = server.url("app")
    git.checkout(url, "main", tmp_path / "ok")
    failing = [
        lambda: git.checkout(url, "nope", tmp_path / "a"),
        lambda: git.checkout(url, "main", tmp_path / "b", source_directory="nope"),
        lambda: git.checkout(url, "main", tmp_path / "c", sha="3" * 40),
        lambda: git.checkout("http://127.0.0.1:1/app", "main", tmp_path / "d"),
        lambda: git.checkout(server.url("gone"), "main", tmp_path / "e"),
    ]
    for call in failing:
        with pytest.raises(GitError):
            call()
    assert list(work.iterdir()) == []


# -- translation of foreign errors -------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind", "terminal"),
    [
        (HangupException([b"git@github.com: Permission denied (publickey)."]), GitAuthFailed, True),
        (HangupException([b"Host key verification failed."]), GitAuthFailed, True),
        (HangupException([b"ERROR: Repository not found."]), RepositoryNotFound, True),
        (
            HangupException([b"ssh: connect to host h port 22: Connection refused"]),
            GitUnreachable,
            False,
        ),
        (HangupException(), GitUnreachable, False),
        (
            GitProtocolError("unexpected http resp 403 for https://h/r/info/refs"),
            GitAuthFailed,
            True,
        ),
        (
            GitProtocolError("unexpected http resp 503 for https://h/r/info/refs"),
            GitUnreachable,
            False,
        ),
        (
            GitProtocolError("unexpected http resp 429 for https://h/r/info/refs"),
            GitUnreachable,
            False,
        ),
        (GitProtocolError("unexpected http resp 418 for https://h/r/info/refs"), GitError, True),
        (GitProtocolError("Invalid content-type from server: text/html"), GitError, True),
        (HTTPUnauthorized('Basic realm="x"', "https://h/r"), GitAuthFailed, True),
        (NotGitRepository(), RepositoryNotFound, True),
        (ConnectionResetError(104, "Connection reset by peer"), GitUnreachable, False),
    ],
)
def test_foreign_errors_become_git_errors(exc: Exception, kind: type, terminal: bool) -> None:
    error = git_errors._translate(exc, "https://h/r", None)
    assert type(error) is kind
    assert error.terminal is terminal


def test_unknown_exceptions_are_not_translated() -> None:
    assert git_errors._translate(RuntimeError("bug"), "https://h/r", None) is None


def test_ssh_urls_run_ssh_without_prompts(git: GitSource) -> None:
    for url in ("ssh://git@github.com/acme/app.git", "git@github.com:acme/app.git"):
        client, path = git._client(url, None)
        assert "BatchMode=yes" in client.ssh_command  # type: ignore[attr-defined]
        assert path.endswith("acme/app.git")


# -- parse_repository_url ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/acme/app",
        "https://github.com/acme/app.git",
        "http://127.0.0.1:8080/app",
        "ssh://git@github.com/acme/app.git",
        "ssh://git@host:2222/srv/app.git",
        "git@github.com:acme/app.git",
        "github.com:acme/app.git",
        "file:///srv/git/app.git",
        "file://localhost/srv/git/app.git",
    ],
)
def test_repository_urls_that_are_accepted(url: str) -> None:
    assert parse_repository_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("https://github.com/acme/my app", "whitespace"),
        ("https://github.com/acme/app\n", "whitespace"),
        ("ftp://host/app", "scheme"),
        ("git://github.com/acme/app", "scheme"),
        ("https:///acme/app", "host"),
        ("https://github.com", "no repository path"),
        ("https://github.com:99999/acme/app", "parsed"),
        ("file://otherhost/srv/app", "absolute local path"),
        ("/srv/git/app", "use https"),
        ("-oProxyCommand=evil:path", "use https"),
        ("ssh://-oProxyCommand=evil/app", "host"),
    ],
)
def test_repository_urls_that_are_refused(url: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match="RepositoryUrl") as caught:
        parse_repository_url(url)
    assert why in caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        f"https://x-access-token:{TOKEN}@github.com/acme/app",
        f"https://{TOKEN}@github.com/acme/app",
        "http://user:pass@127.0.0.1/app",
        "ssh://git:secret@host/app",
    ],
)
def test_credentials_in_the_url_are_refused_without_repeating_them(url: str) -> None:
    with pytest.raises(InvalidRequest, match="use a connection") as caught:
        parse_repository_url(url)
    assert TOKEN not in caught.value.message
    assert "pass@" not in caught.value.message and "secret" not in caught.value.message
