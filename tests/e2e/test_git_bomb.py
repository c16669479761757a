"""A hostile repository's git bomb (a pack of a few KB that checks out to terabytes) and
one huge blob are refused with the limit named, while the agent's memory stays flat;
an honest repository deploys after them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dulwich.objects import Blob
from typer.testing import CliRunner

from slipway.cli import app
from testkit.gitbomb import bomb_tree
from testkit.gitserver import GitServer
from testkit.harness import AgentProcess, code_source, operations, wait_for, wait_status

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {"build_timeout": 120}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MB = 1024 * 1024
SLACK_KB = 50 * 1024  # the agent's memory may grow this much while it refuses a bomb


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak RSS since the process started) of ``pid``, in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


class RssSampler:
    """The highest VmRSS seen every 10 ms until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, memory_kb(self.pid)["VmRSS"])

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def deployment_log(agent, service: str, op_id: str) -> str:
    result = CliRunner().invoke(app, ["logs", service, "--deployment", op_id], env=agent.env)
    assert result.exit_code == 0, result.output
    return result.output


def make_bomb(git: GitServer) -> None:
    """10**10 files of 1 MB (10 PB) from a pack of a few KB."""
    git.create_repo("bomb")
    git.commit_tree("bomb", bomb_tree(git.repo("bomb"), levels=10, width=10, blob_size=MB))


def make_big_blob(git: GitServer) -> None:
    """One 150 MB file of zeros: past the 100 MB an object may inflate to."""
    git.create_repo("blob")
    blob = Blob.from_string(b"\0" * (150 * MB))
    git.commit("blob", {"README.md": "one big file"})
    repo = git.repo("blob")
    repo.object_store.add_object(blob)
    tree = repo[repo[repo.refs[b"refs/heads/main"]].tree]
    tree.add(b"zeros.bin", 0o100644, blob.id)
    repo.object_store.add_object(tree)
    git.commit_tree("blob", tree.id)


@pytest.mark.parametrize(
    ("make", "repo", "setting"),
    [(make_bomb, "bomb", "git_max_checkout_mb"), (make_big_blob, "blob", "git_max_blob_mb")],
    ids=["bomb", "big-blob"],
)
def test_a_hostile_repository_is_refused_and_the_agent_stays_flat(agent, git, make, repo, setting):
    make(git)
    client = agent.client()
    pid = agent.proc.pid
    before = memory_kb(pid)
    git.served.clear()
    with RssSampler(pid) as sampler:
        created = client.create_service(
            ServiceName=f"hostile-{repo}", SourceConfiguration=code_source(git.url(repo))
        )
        arn = created["Service"]["ServiceArn"]
        wait_status(client, arn, "CREATE_FAILED", timeout=120)
    after = memory_kb(pid)

    [op] = operations(client, arn)
    assert (op["Type"], op["Status"]) == ("CREATE_SERVICE", "FAILED")
    log = deployment_log(agent, f"hostile-{repo}", created["OperationId"])
    assert f"(setting {setting})" in log, log
    assert "too big" in log
    assert git.served.upload_pack_bytes < 1 * MB  # a small pack, refused on what it would be
    assert sampler.peak > 0
    assert sampler.peak - before["VmRSS"] <= SLACK_KB, (before, sampler.peak)
    # The peak since the agent started covers moments between two samples too.
    assert after["VmHWM"] <= max(before["VmHWM"], before["VmRSS"] + SLACK_KB), (before, after)
    assert list((agent.root / "data" / "builds").iterdir()) == []


def test_an_honest_repository_still_deploys(agent, git):
    root = EXAMPLES / "python-hello"
    files = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}
    git.create_repo("honest", files)
    client = agent.client()
    arn = client.create_service(
        ServiceName="honest", SourceConfiguration=code_source(git.url("honest"))
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING", timeout=300)
    wait_for(lambda: agent.get("honest").text.strip() == "Hello from python-hello", 30, "hello")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("git_max_pack_mb", "0"),
        ("git_max_objects", "-1"),
        ("git_max_blob_mb", "0"),
        ("git_max_checkout_mb", "-2048"),
        ("git_max_files", "0"),
        ("git_fetch_timeout", "0"),
        ("git_fetch_timeout", "10m"),
    ],
)
def test_nonsense_limits_keep_the_agent_from_starting(tmp_path, caddy_server, setting, value):
    agent = AgentProcess(
        tmp_path, caddy_server.admin_url, caddy_server.http_port, **{setting: value}
    )
    ended = agent.cli("serve", ok=False)
    assert setting in ended.stderr + ended.stdout
