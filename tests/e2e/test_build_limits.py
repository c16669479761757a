"""A hostile build harms nothing but itself: a repository whose build command bombs
processes, eats memory or fills the disk is stopped at the limit, which the deployment
log names with its setting; the last good revision keeps serving, the agent answers, and
the next good build of the same service succeeds. The app of a managed runtime runs as
an unprivileged user and still serves through Caddy."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slipway.backends.build_box import CGROUP_ROOT, PARENT
from slipway.cli import app
from testkit.gitserver import GitServer
from testkit.harness import code_source, live_containers, operation_end, wait_status

pytestmark = pytest.mark.e2e

MEMORY_MB, PIDS, DISK_MB, CONTEXT_MB = 256, 64, 64, 2
AGENT_SETTINGS = {
    "build_timeout": 180,
    "build_memory_mb": MEMORY_MB,
    "build_pids_limit": PIDS,
    "build_disk_max_mb": DISK_MB,
    "build_context_max_mb": CONTEXT_MB,
}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python-hello"
GOOD_YAML = (EXAMPLE / "apprunner.yaml").read_text()
INSTALL = "      - pip install -r requirements.txt\n"

# Each runs after the (cached) dependency install, as a second build command.
ATTACKS = {
    # Processes without end; dash gives up once a fork fails, so it keeps forking too.
    "fork-bomb": "bomb() { bomb | bomb & }; bomb; while :; do sleep 30 & done",
    "memory": "python3 -c 'b = bytearray(1024 * 1024 * 1024); print(len(b))'",
    "disk": "while :; do head -c 1048576 /dev/urandom >> /tmp/fill; done",
}
LINES = {
    "fork-bomb": f"[Build] build stopped: process limit {PIDS} reached (setting build_pids_limit)",
    "memory": f"[Build] build stopped: memory limit {MEMORY_MB} MB reached"
    " (setting build_memory_mb)",
    "disk": f"[Build] build stopped: disk limit {DISK_MB} MB reached (setting build_disk_max_mb)",
}


def with_build_command(command: str) -> str:
    """apprunner.yaml with ``command`` after the dependency install (a JSON string is a
    YAML one)."""
    return GOOD_YAML.replace(INSTALL, INSTALL + f"      - {json.dumps(command)}\n")


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        server.create_repo(
            "hostile", {str(p.relative_to(EXAMPLE)): p.read_text() for p in EXAMPLE.iterdir()}
        )
        yield server


@pytest.fixture(scope="module")
def service(agent, git) -> dict:
    client = agent.client()
    created = client.create_service(
        ServiceName="hostile", SourceConfiguration=code_source(git.url("hostile"))
    )["Service"]
    wait_status(client, created["ServiceArn"], "RUNNING", timeout=300)
    return created


def deploy(agent, service: dict) -> tuple[str, str]:
    """Start a deployment of the branch's tip; its final status and deployment log."""
    client = agent.client()
    op_id = client.start_deployment(ServiceArn=service["ServiceArn"])["OperationId"]
    status = operation_end(client, service["ServiceArn"], op_id)["Status"]
    result = CliRunner().invoke(app, ["logs", "hostile", "--deployment", op_id], env=agent.env)
    assert result.exit_code == 0, result.output
    return status, result.output


def build_boxes(agent) -> list[str]:
    """Cgroup parents of this agent's builds still on the host (each build removes its
    own; those of agents side by side are theirs)."""
    parent = CGROUP_ROOT / "pids" / PARENT
    mine = f"{agent.proc.pid}-"
    boxes = parent.iterdir() if parent.is_dir() else []
    return sorted(p.name for p in boxes if p.is_dir() and p.name.startswith(mine))


def test_a_runtime_app_runs_as_an_unprivileged_user(agent, service):
    (container,) = live_containers(service["ServiceId"])
    uid = container.exec_run(["id", "-u"]).output.decode().strip()
    assert uid == "10001"
    top = container.top(ps_args="-o pid,uid,comm")["Processes"]
    assert all(row[1] == "10001" for row in top), top
    assert agent.get("hostile").text.strip() == "Hello from python-hello"
    assert agent.get("hostile", "/uptime").status_code == 200


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_hostile_build_stops_at_its_limit(agent, git, service, attack):
    git.commit("hostile", {"apprunner.yaml": with_build_command(ATTACKS[attack])})
    status, log = deploy(agent, service)
    assert status == "FAILED", log
    assert LINES[attack] in log, log
    # The host is fine: the agent answers, the last good revision still serves, and the
    # build left no box behind.
    client = agent.client()
    assert client.describe_service(ServiceArn=service["ServiceArn"])["Service"]["Status"] == (
        "RUNNING"
    )
    assert agent.get("hostile").text.strip() == "Hello from python-hello"
    assert build_boxes(agent) == []


def test_a_context_over_its_limit_is_refused(agent, git, service):
    git.commit(
        "hostile",
        {"apprunner.yaml": GOOD_YAML, "blob.bin": os.urandom((CONTEXT_MB + 1) * 1024 * 1024)},
    )
    status, log = deploy(agent, service)
    assert status == "FAILED", log
    expected = (
        f"[Build] build refused: build context over its limit of {CONTEXT_MB} MB"
        " (setting build_context_max_mb)"
    )
    assert expected in log, log


def test_the_next_good_build_succeeds(agent, git, service):
    git.commit("hostile", {"apprunner.yaml": GOOD_YAML, "blob.bin": None})
    status, log = deploy(agent, service)
    assert status == "SUCCEEDED", log
    assert agent.get("hostile").text.strip() == "Hello from python-hello"
    assert build_boxes(agent) == []
