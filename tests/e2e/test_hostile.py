"""One hostile tenant on a shared host, attacked for real, while a neighbour serves.

A hostile service built from a real git repository (python3 managed runtime) tries,
in its builds, a fork bomb, more memory than its limit, writing past the disk limit,
the cloud metadata address and the host's Caddy admin port; its running instance tries
a neighbour's instance, the agent's API (bound beyond loopback here, as an operator
might), the neighbour's secret, a setuid-root binary and a raw socket. Each attempt
fails or is stopped at its limit, and is asserted as such; throughout, the neighbour
under steady load answers every request.

The metadata address and the agent's port are servers of the test's own, shown to
answer from the host, so every refused attempt is a real one.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slipway.cli import app
from testkit import hostile as targets
from testkit.gitserver import GitServer
from testkit.harness import (
    Load,
    code_source,
    image_source,
    live_containers,
    operation_end,
    wait_status,
)
from testkit.hostile import FENCED, METADATA, container_network, host_answers, metadata_server

pytestmark = pytest.mark.e2e

MEMORY_MB, PIDS, DISK_MB = 256, 64, 64
AGENT_SETTINGS = {
    "build_timeout": 300,
    "build_memory_mb": MEMORY_MB,
    "build_pids_limit": PIDS,
    "build_disk_max_mb": DISK_MB,
    "listen_host": "0.0.0.0",  # an operator's choice the fence must survive
}
ATTACKER = (Path(targets.__file__).parent / "hostile_app.py").read_text()
SECRET_VALUE = "neighbour-only-6c1f0e"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:neighbour-token-AbCdEf"
BUILD_ATTACKS = {
    "fork-bomb": (
        "bomb() { bomb | bomb & }; bomb; while :; do sleep 30 & done",
        f"[Build] build stopped: process limit {PIDS} reached (setting build_pids_limit)",
    ),
    "memory": (
        "python3 -c 'b = bytearray(1024 * 1024 * 1024); print(len(b))'",
        f"[Build] build stopped: memory limit {MEMORY_MB} MB reached (setting build_memory_mb)",
    ),
    "disk": (
        "while :; do head -c 1048576 /dev/urandom >> /tmp/fill; done",
        f"[Build] build stopped: disk limit {DISK_MB} MB reached (setting build_disk_max_mb)",
    ),
}


def apprunner_yaml(*build: str, secret: bool = False) -> str:
    commands = "".join(f"      - {json.dumps(c)}\n" for c in build)
    secrets = (
        f"  secrets:\n    - name: NEIGHBOUR_TOKEN\n      value-from: {json.dumps(SECRET_ARN)}\n"
        if secret
        else ""
    )
    return (
        "version: 1.0\nruntime: python3\nbuild:\n  commands:\n    build:\n"
        + commands
        + "run:\n  command: python3 attacks.py\n  network:\n    port: 8080\n"
        + secrets
    )


@pytest.fixture(scope="module")
def metadata() -> Iterator:
    with metadata_server() as server:
        yield server


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


@pytest.fixture(scope="module")
def neighbour(agent, push_hello) -> dict:
    """A service with a secret of its own."""
    put = CliRunner().invoke(
        app,
        ["secrets", "put", "neighbour-token", "--service", "neighbour"],
        input=SECRET_VALUE,
        env=agent.env,
    )
    assert put.exit_code == 0, put.output
    client = agent.client()
    service = client.create_service(
        ServiceName="neighbour",
        SourceConfiguration=image_source(
            push_hello(), RuntimeEnvironmentSecrets={"NEIGHBOUR_TOKEN": SECRET_ARN}
        ),
    )["Service"]
    wait_status(client, service["ServiceArn"], "RUNNING")
    assert agent.get("neighbour", "/env/NEIGHBOUR_TOKEN").text.strip() == SECRET_VALUE
    return service


@pytest.fixture(scope="module")
def load(agent, neighbour, hostile) -> Iterator[Load]:
    """Steady load on the neighbour from once both services exist (a new host in the
    router is not an attack) to the end of the module: every attack runs under it."""
    with Load(agent, "neighbour", workers=2, slow_ms=20) as running:
        yield running


def deploy(agent, arn: str, name: str) -> tuple[str, str]:
    """A deployment of the branch's tip: its final status and its deployment log."""
    client = agent.client()
    op_id = client.start_deployment(ServiceArn=arn)["OperationId"]
    status = operation_end(client, arn, op_id)["Status"]
    log = CliRunner().invoke(app, ["logs", name, "--deployment", op_id], env=agent.env)
    assert log.exit_code == 0, log.output
    return status, log.output


@pytest.fixture(scope="module")
def hostile(agent, git, neighbour, metadata) -> dict:
    """The hostile service, first deployed with a build that tries the metadata address
    and the host's Caddy admin port, and makes a setuid-root python for later."""
    neighbour_box = live_containers(neighbour["ServiceId"])[0]
    _, _, gateway = container_network(neighbour_box)
    admin_port = int(agent.env["SLIPWAY_CADDY_ADMIN"].rsplit(":", 1)[1])
    build = apprunner_yaml(
        'cp "$(command -v python3)" /app/suid-python',
        "chmod 4755 /app/suid-python",
        f"python3 attacks.py build metadata={METADATA}:{metadata.server_address[1]}"
        f" caddy_admin={gateway}:{admin_port}",
    )
    git.create_repo("hostile", {"attacks.py": ATTACKER, "apprunner.yaml": build})
    client = agent.client()
    service = client.create_service(
        ServiceName="hostile", SourceConfiguration=code_source(git.url("hostile"))
    )["Service"]
    wait_status(client, service["ServiceArn"], "RUNNING", timeout=300)
    return {**service, "build_yaml": build}


def test_its_build_reaches_neither_metadata_nor_caddy_admin(agent, git, hostile, metadata, load):
    # The first build tried before the load began; a new commit builds it again under it.
    git.commit("hostile", {"apprunner.yaml": hostile["build_yaml"] + "# again\n"})
    status, log = deploy(agent, hostile["ServiceArn"], "hostile")
    assert status == "SUCCEEDED", log
    assert agent.get("hostile").text == "hostile"
    found = json.loads(agent.get("hostile", "/build").text)
    assert found == {"metadata": FENCED, "caddy_admin": FENCED}, found
    assert metadata.RequestHandlerClass.peers == []  # nothing of it arrived


def test_its_instance_reaches_no_neighbour_no_agent_no_secret_no_root(
    agent, hostile, neighbour, load
):
    neighbour_box = live_containers(neighbour["ServiceId"])[0]
    _, neighbour_address, _ = container_network(neighbour_box)
    (hostile_box,) = live_containers(hostile["ServiceId"])
    _, _, gateway = container_network(hostile_box)
    # Both targets answer the host: the neighbour's app, and the agent on all addresses.
    assert host_answers(neighbour_address, 8080)
    assert host_answers(gateway, agent.port)

    query = f"neighbour={neighbour_address}:8080&agent={gateway}:{agent.port}"
    found = json.loads(agent.get("hostile", f"/run?{query}").text)
    assert found["neighbour"] == FENCED
    assert found["agent"] == FENCED
    assert found["uid"] == "10001"
    assert found["setuid_euid"] == "10001"  # no-new-privileges: the setuid bit is ignored
    assert found["raw_socket"] == f"refused {errno.EPERM}"
    assert found["secrets_dir"] == "False"
    assert SECRET_VALUE not in found["environment"]


def test_asking_for_the_neighbours_secret_fails_its_deployment(agent, git, hostile, load):
    git.commit("hostile", {"apprunner.yaml": apprunner_yaml("true", secret=True)})
    status, log = deploy(agent, hostile["ServiceArn"], "hostile")
    assert status == "FAILED", log
    assert "secret neighbour-token is not granted to service hostile" in log, log
    assert SECRET_VALUE not in log
    assert agent.get("hostile").text == "hostile"  # the last good revision serves


@pytest.mark.parametrize("attack", list(BUILD_ATTACKS))
def test_its_build_stops_at_each_limit(agent, git, hostile, load, attack):
    command, line = BUILD_ATTACKS[attack]
    git.commit("hostile", {"apprunner.yaml": apprunner_yaml(command)})
    status, log = deploy(agent, hostile["ServiceArn"], "hostile")
    assert status == "FAILED", log
    assert line in log, log
    assert agent.get("hostile").text == "hostile"


def test_the_neighbour_answered_every_request_throughout(load):
    with load.lock:
        answers, errors = list(load.answers), list(load.errors)
    assert errors == []
    assert len(answers) > 100
    assert {status for status, _ in answers} == {200}
