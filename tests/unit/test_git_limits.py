"""The git fetch limits: each crossed on a real fetch from dulwich's smart HTTP server,
refused with the setting named, and nothing written past the limit."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.objects import Blob
from dulwich.pack import write_pack_objects
from dulwich.repo import Repo

from slipway.config import load_settings
from slipway.errors import InvalidRequest
from slipway.sources.git import GitSource
from slipway.sources.git_errors import GitLimitExceeded
from slipway.sources.git_limits import GitLimits
from slipway.sources.git_pack import Deadline, PackedBlobs, scan_pack
from testkit.gitbomb import bomb_tree
from testkit.gitserver import GitServer

MB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "served") as srv:
        yield srv


def source(tmp_path: Path, **limits: object) -> GitSource:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return GitSource(timeout=5, work_dir=work, limits=GitLimits(**limits))  # type: ignore[arg-type]


def refused(git: GitSource, server: GitServer, dest: Path, setting: str) -> GitLimitExceeded:
    with pytest.raises(GitLimitExceeded, match=f"setting {setting}") as caught:
        git.checkout(server.url("app"), "main", dest)
    assert caught.value.terminal
    assert not any(dest.iterdir()), "nothing is written once a limit is crossed"
    return caught.value


def test_a_bomb_is_refused_before_a_file_is_written(server: GitServer, tmp_path: Path) -> None:
    server.create_repo("app")
    # 10**6 files of 64 KB (61 GB) from 8 objects.
    tree = bomb_tree(server.repo("app"), levels=6, width=10, blob_size=64 * 1024)
    server.commit_tree("app", tree)
    git = source(tmp_path, max_checkout_mb=16)

    error = refused(git, server, tmp_path / "src", "git_max_checkout_mb")
    assert "16 MB" in error.message
    assert server.served.upload_pack_bytes < 64 * 1024  # a pack of a few KB
    assert os.listdir(tmp_path / "work") == []  # the fetch's temporary repository is gone


def test_a_bomb_of_empty_directories_stops_at_the_file_limit(
    server: GitServer, tmp_path: Path
) -> None:
    server.create_repo("app")
    tree = bomb_tree(server.repo("app"), levels=10, width=10, blob_size=None)  # 10**10 dirs
    server.commit_tree("app", tree)
    started = time.monotonic()
    refused(source(tmp_path, max_files=5000), server, tmp_path / "src", "git_max_files")
    assert time.monotonic() - started < 10


def test_too_many_files(server: GitServer, tmp_path: Path) -> None:
    server.create_repo("app", {f"f{i}.txt": str(i) for i in range(5)})
    refused(source(tmp_path, max_files=4), server, tmp_path / "src", "git_max_files")
    commit, _ = source(tmp_path, max_files=5).checkout(server.url("app"), "main", tmp_path / "ok")
    assert len(os.listdir(tmp_path / "ok")) == 5


def test_too_many_objects(server: GitServer, tmp_path: Path) -> None:
    server.create_repo("app", {f"f{i}.txt": str(i) for i in range(10)})  # 10 blobs, tree, commit
    error = refused(source(tmp_path, max_objects=11), server, tmp_path / "src", "git_max_objects")
    assert "12 objects" in error.message


def test_a_pack_too_big_is_cut_off_while_it_downloads(server: GitServer, tmp_path: Path) -> None:
    server.create_repo("app", {"noise.bin": os.urandom(3 * MB)})  # incompressible
    refused(source(tmp_path, max_pack_mb=1), server, tmp_path / "src", "git_max_pack_mb")


def test_one_object_that_inflates_too_far(server: GitServer, tmp_path: Path) -> None:
    server.create_repo("app", {"zeros.bin": b"\0" * (3 * MB)})  # a pack of a few KB
    error = refused(source(tmp_path, max_blob_mb=2), server, tmp_path / "src", "git_max_blob_mb")
    assert "one of its objects" in error.message


def test_a_fetch_past_its_time(server: GitServer, tmp_path: Path) -> None:
    server.create_repo("app", {"app.py": "print()\n"})
    refused(source(tmp_path, fetch_timeout=1e-9), server, tmp_path / "src", "git_fetch_timeout")


def test_blobs_are_written_whole_within_the_limits(server: GitServer, tmp_path: Path) -> None:
    big = os.urandom(MB) + b"\0" * (2 * MB)
    similar = big[: MB // 2] + b"changed" + big[MB // 2 :]  # likely sent as a delta
    server.create_repo("app", {"big.bin": big, "similar.bin": similar, "small.txt": "hi\n"})
    git = source(tmp_path, max_pack_mb=4, max_blob_mb=4, max_checkout_mb=7, max_files=3)
    git.checkout(server.url("app"), "main", tmp_path / "src")
    assert (tmp_path / "src" / "big.bin").read_bytes() == big
    assert (tmp_path / "src" / "similar.bin").read_bytes() == similar
    assert (tmp_path / "src" / "small.txt").read_text() == "hi\n"


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ("SLIPWAY_GIT_MAX_PACK_MB", "git_max_pack_mb"),
        ("SLIPWAY_GIT_MAX_OBJECTS", "git_max_objects"),
        ("SLIPWAY_GIT_MAX_BLOB_MB", "git_max_blob_mb"),
        ("SLIPWAY_GIT_MAX_CHECKOUT_MB", "git_max_checkout_mb"),
        ("SLIPWAY_GIT_MAX_FILES", "git_max_files"),
        ("SLIPWAY_GIT_FETCH_TIMEOUT", "git_fetch_timeout"),
    ],
)
@pytest.mark.parametrize("value", ["0", "-5"])
def test_nonsense_limits_are_refused_naming_the_setting(env: str, setting: str, value: str) -> None:
    settings = load_settings(Path("/nonexistent"), environ={env: value})
    with pytest.raises(InvalidRequest, match=setting):
        GitSource(limits=settings.git_limits)


def test_a_mistyped_limit_is_refused_naming_the_setting() -> None:
    with pytest.raises(InvalidRequest, match="git_max_pack_mb"):
        load_settings(Path("/nonexistent"), environ={"SLIPWAY_GIT_MAX_PACK_MB": "512MB"})


def test_a_blob_stored_as_a_delta_is_measured_by_its_result(tmp_path: Path) -> None:
    big = os.urandom(MB) + b"\0" * (2 * MB)
    base, changed = Blob.from_string(big), Blob.from_string(big[:99] + b"changed" + big[99:])
    repo = Repo.init_bare(str(tmp_path / "repo"), mkdir=True)
    f, commit, _ = repo.object_store.add_pack()
    write_pack_objects(f.write, [base, changed], repo.object_format, deltify=True)
    commit()
    pack = repo.object_store.packs[0]
    assert any(o.pack_type_num in (6, 7) for o in pack.data.iter_unpacked()), "no delta made"

    limits = GitLimits(max_blob_mb=4)
    assert scan_pack(Path(pack.data.path), limits, Deadline(60)) == 2
    with pytest.raises(GitLimitExceeded, match="git_max_blob_mb"):
        scan_pack(Path(pack.data.path), GitLimits(max_blob_mb=2), Deadline(60))
    blobs = PackedBlobs(repo.object_store)
    try:
        assert blobs.size(changed.id) == len(changed.data) == 3 * MB + 7
        out = io.BytesIO()
        blobs.write(changed.id, out)
        assert out.getvalue() == changed.data
    finally:
        blobs.close()
        repo.close()
