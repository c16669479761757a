"""Listing tags: GitSource.tags and tag checkouts (dulwich smart HTTP on loopback), and
RegistryClient.list_tags against canned registry answers (httpx.MockTransport)."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from dulwich.objects import Commit, Tag

from slipway.errors import (
    ImageNotFound,
    InvalidRequest,
    RegistryAuthFailed,
    RegistryError,
    RegistryUnreachable,
)
from slipway.sources.git import GitSource
from slipway.sources.git_errors import (
    CommitNotFound,
    GitAuthFailed,
    GitUnreachable,
    RepositoryNotFound,
    TagNotFound,
)
from slipway.sources.registry import ImageRef, RegistryClient
from testkit.gitserver import AUTHOR, GitServer

TOKEN = "ghp_PLANTEDtoken0123456789abcdefghijklmnop"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "served") as srv:
        yield srv


@pytest.fixture
def git(tmp_path: Path) -> GitSource:
    work = tmp_path / "work"
    work.mkdir()
    return GitSource(timeout=5, work_dir=work)


def annotated_tag(server: GitServer, name: str, tag: str, target: str | bytes) -> str:
    """An annotated tag object named ``tag`` pointing at ``target``; returns the tag's id."""
    repo = server.repo(name)
    obj = Tag()
    obj.tagger = AUTHOR
    obj.tag_time = 1_700_000_000
    obj.tag_timezone = 0
    obj.name = tag.encode()
    obj.message = b"release " + tag.encode() + b"\n"
    kind = Commit if isinstance(repo.object_store[_b(target)], Commit) else Tag
    obj.object = (kind, _b(target))
    repo.object_store.add_object(obj)
    repo.refs[b"refs/tags/" + tag.encode()] = obj.id
    return obj.id.decode()


def _b(sha: str | bytes) -> bytes:
    return sha.encode() if isinstance(sha, str) else sha


# -- GitSource.tags -----------------------------------------------------------------


def test_tags_are_peeled_to_commits_and_fetch_no_objects(server: GitServer, git: GitSource) -> None:
    first = server.create_repo("app", {"app.py": "1\n"})
    second = server.commit("app", {"app.py": "2\n"})
    server.tag("app", "v1.0.0", first)
    tag_id = annotated_tag(server, "app", "v1.1.0", second)
    annotated_tag(server, "app", "v1.1.0-signed", tag_id.encode())  # a tag of a tag
    server.served.clear()

    assert git.tags(server.url("app")) == {
        "v1.0.0": first,
        "v1.1.0": second,
        "v1.1.0-signed": second,
    }
    assert all(path.endswith("/info/refs") for _, path, _ in server.served.requests)
    assert server.served.upload_pack_bytes == 0


def test_a_repository_without_tags_has_none(server: GitServer, git: GitSource) -> None:
    server.create_repo("app", {"a": "1"})
    server.create_branch("app", "dev")
    assert git.tags(server.url("app")) == {}


def test_tags_of_a_local_repository_are_peeled_too(server: GitServer, git: GitSource) -> None:
    sha = server.create_repo("app", {"a": "1"})
    server.tag("app", "light", sha)
    annotated_tag(server, "app", "heavy", sha)
    url = "file://" + server.repo("app").path
    assert git.tags(url) == {"light": sha, "heavy": sha}


def test_tags_translate_errors_like_head(server: GitServer, git: GitSource, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound) as missing:
        git.tags(server.url("nope"))
    assert missing.value.terminal

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(GitUnreachable) as down:
        git.tags(f"http://127.0.0.1:{port}/app")
    assert not down.value.terminal

    with GitServer(tmp_path / "private", auth=("x-access-token", TOKEN)) as private:
        sha = private.create_repo("app", {"a": "1"})
        private.tag("app", "v1", sha)
        assert git.tags(private.url("app"), token=TOKEN) == {"v1": sha}
        with pytest.raises(GitAuthFailed) as refused:
            git.tags(private.url("app"), token="wrong")
        assert TOKEN not in str(refused.value)
        with pytest.raises(GitAuthFailed):
            git.tags(private.url("app"))


# -- checkout of a tag ---------------------------------------------------------------


def test_checkout_of_a_lightweight_tag(server: GitServer, git: GitSource, tmp_path: Path) -> None:
    first = server.create_repo("app", {"app.py": "1\n"})
    server.commit("app", {"app.py": "2\n"})
    server.tag("app", "v1.0.0", first)

    commit, root = git.checkout(server.url("app"), "refs/tags/v1.0.0", tmp_path / "a")
    assert commit.sha == first
    assert (root / "app.py").read_text() == "1\n"

    commit, root = git.checkout(server.url("app"), "refs/tags/v1.0.0", tmp_path / "b", sha=first)
    assert commit.sha == first


def test_checkout_of_an_annotated_tag_is_its_commit(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    server.create_repo("app", {"app.py": "1\n"})
    second = server.commit("app", {"app.py": "2\n"})
    annotated_tag(server, "app", "v1.2.0", second)
    server.commit("app", {"app.py": "3\n"})
    url = server.url("app")

    commit, root = git.checkout(url, "refs/tags/v1.2.0", tmp_path / "tip")
    assert commit.sha == second
    assert (root / "app.py").read_text() == "2\n"
    assert not (tmp_path / "tip" / ".git").exists()

    # What tags() reports is what the deployment of that tag asks for.
    sha = git.tags(url)["v1.2.0"]
    commit, root = git.checkout(url, "refs/tags/v1.2.0", tmp_path / "pinned", sha=sha)
    assert commit.sha == second


def test_checkout_of_a_missing_tag_is_terminal(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    sha = server.create_repo("app", {"a": "1"})
    server.tag("app", "v1", sha)
    with pytest.raises(TagNotFound, match="tag v2 not found") as info:
        git.checkout(server.url("app"), "refs/tags/v2", tmp_path / "x")
    assert info.value.terminal
    assert "1 tags" in str(info.value)


def test_a_sha_not_behind_the_tag_is_refused(
    server: GitServer, git: GitSource, tmp_path: Path
) -> None:
    first = server.create_repo("app", {"a": "1"})
    server.tag("app", "v1", first)
    # A SHA the server will not hand out is looked for behind the tag, as for a branch.
    with pytest.raises(CommitNotFound, match="not on tag v1") as info:
        git.checkout(server.url("app"), "refs/tags/v1", tmp_path / "x", sha="0" * 40)
    assert info.value.terminal


@pytest.mark.parametrize("ref", ["refs/tags/", "refs/tags/a b", "refs/tags/../x", "refs/tags/-x"])
def test_bad_tag_names_are_refused_before_any_request(
    git: GitSource, tmp_path: Path, ref: str
) -> None:
    with pytest.raises(InvalidRequest, match="not a valid tag name"):
        git.checkout("http://127.0.0.1:1/app", ref, tmp_path / "x")


# -- RegistryClient.list_tags ----------------------------------------------------------

REF = ImageRef.parse("127.0.0.1:5000/team/hello:v1")
Handler = Callable[[httpx.Request], httpx.Response]


def registry(handler: Handler) -> RegistryClient:
    return RegistryClient(transport=httpx.MockTransport(handler))


def paged(pages: dict[str, tuple[list[str] | None, str | None]]) -> Handler:
    """Answer tags/list pages keyed by the ``last`` query parameter ('' for the first)."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/team/hello/tags/list"
        tags, following = pages[request.url.params.get("last", "")]
        headers = {"Link": f'<{following}>; rel="next"'} if following else {}
        return httpx.Response(200, json={"name": "team/hello", "tags": tags}, headers=headers)

    return handler


def test_one_page() -> None:
    assert registry(paged({"": (["v1", "v2"], None)})).list_tags(REF) == ["v1", "v2"]


def test_link_pagination_is_followed_relative_and_absolute() -> None:
    pages = {
        "": (["a", "b"], "/v2/team/hello/tags/list?n=2&last=b"),
        "b": (["c", "d"], "http://127.0.0.1:5000/v2/team/hello/tags/list?n=2&last=d"),
        "d": (["e"], None),
    }
    assert registry(paged(pages)).list_tags(REF) == ["a", "b", "c", "d", "e"]


def test_an_empty_repository_has_no_tags() -> None:
    assert registry(paged({"": (None, None)})).list_tags(REF) == []


def test_a_link_chain_that_loops_is_an_error() -> None:
    pages = {
        "": (["a"], "/v2/team/hello/tags/list?last=a"),
        "a": (["b"], "/v2/team/hello/tags/list?last=a"),
    }
    with pytest.raises(RegistryError, match="kept paging"):
        registry(paged(pages)).list_tags(REF)


def test_bearer_token_is_got_once_for_all_pages() -> None:
    token_requests: list[httpx.Request] = []
    pages = paged({"": (["a"], "/v2/team/hello/tags/list?last=a"), "a": (["b"], None)})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.example":
            token_requests.append(request)
            return httpx.Response(200, json={"token": "T"})
        if request.headers.get("Authorization") != "Bearer T":
            challenge = 'Bearer realm="https://auth.example/token",service="reg"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return pages(request)

    assert registry(handler).list_tags(REF, ("u", "p")) == ["a", "b"]
    (token,) = token_requests
    assert token.url.params["scope"] == "repository:team/hello:pull"
    expected = "Basic " + base64.b64encode(b"u:p").decode()
    assert token.headers["Authorization"] == expected


def test_basic_auth_and_refusals() -> None:
    good = "Basic " + base64.b64encode(b"AWS:pw").decode()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") == good:
            return httpx.Response(200, json={"tags": ["v1"]})
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="ecr"'})

    assert registry(handler).list_tags(REF, ("AWS", "pw")) == ["v1"]
    with pytest.raises(RegistryAuthFailed):
        registry(handler).list_tags(REF, ("AWS", "bad"))
    with pytest.raises(RegistryAuthFailed, match="requires credentials"):
        registry(handler).list_tags(REF)


def test_errors_are_translated() -> None:
    with pytest.raises(ImageNotFound, match="127.0.0.1:5000/team/hello not found"):
        registry(lambda r: httpx.Response(404)).list_tags(REF)
    with pytest.raises(RegistryUnreachable):
        registry(lambda r: httpx.Response(503)).list_tags(REF)
    with pytest.raises(RegistryError, match="not JSON"):
        registry(lambda r: httpx.Response(200, content=b"<html>")).list_tags(REF)
    with pytest.raises(RegistryError, match="malformed"):
        registry(lambda r: httpx.Response(200, json={"tags": "v1"})).list_tags(REF)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RegistryUnreachable, match=r"127\.0\.0\.1:5000"):
        registry(refused).list_tags(REF)


# -- kept connections ------------------------------------------------------------------


def test_reused_connections_share_one_pool_but_never_a_token(tmp_path: Path) -> None:
    git = GitSource(timeout=5, reuse_connections=True)
    with GitServer(tmp_path / "private", auth=("x-access-token", TOKEN)) as private:
        sha = private.create_repo("app", {"a": "1"})
        private.tag("app", "v1", sha)
        url = private.url("app")
        assert git.head(url, "main", token=TOKEN) == sha
        assert git.tags(url, token=TOKEN) == {"v1": sha}
        assert len(git._managers) == 1  # one pool for the origin, kept across calls
        with pytest.raises(GitAuthFailed):
            git.head(url, "main")  # the token went with its request, not into the pool
        git.close()
        assert git._managers == {}
        assert git.head(url, "main", token=TOKEN) == sha  # usable after close
    git.close()
