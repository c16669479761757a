"""Safe rollouts under faults: each test ends with one healthy revision serving and no
orphaned containers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest
from typer.testing import CliRunner

from slipway.backends import LABEL_DEPLOYMENT_ID
from slipway.cli import app
from testkit.gitserver import GitServer
from testkit.harness import (
    code_source,
    image_source,
    operations,
    service_containers,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {"settle_seconds": 8, "service_quota": 20}
SLOW_HEALTH = {"Protocol": "HTTP", "Path": "/health", "Interval": 2, "HealthyThreshold": 3}


def one_revision_serving(agent, name: str, arn: str, version: str | None) -> None:
    """The service is RUNNING, answers with ``version`` and runs only its live instances."""
    client = agent.client()
    wait_status(client, arn, "RUNNING", timeout=120)
    service = client.describe_service(ServiceArn=arn)["Service"]
    answer = agent.get(name, "/env/APP_VERSION")
    if version is None:
        assert answer.status_code == 404
    else:
        assert answer.text.strip() == version
    ops = [o for o in operations(client, arn) if o["Status"] == "SUCCEEDED"]
    live_ops = {c.labels[LABEL_DEPLOYMENT_ID] for c in service_containers(service["ServiceId"])}
    wait_for(lambda: len(service_containers(service["ServiceId"])) == 1, 30, "one instance left")
    live_ops = {c.labels[LABEL_DEPLOYMENT_ID] for c in service_containers(service["ServiceId"])}
    assert len(live_ops) == 1 and live_ops <= {o["Id"] for o in ops}
    assert all(c.status == "running" for c in service_containers(service["ServiceId"]))


@pytest.fixture
def deployed(agent, hello_image):
    def create(name: str, **extra: object) -> tuple[str, str]:
        client = agent.client()
        created = client.create_service(
            ServiceName=name, SourceConfiguration=image_source(hello_image), **extra
        )
        wait_status(client, created["Service"]["ServiceArn"], "RUNNING")
        return created["Service"]["ServiceArn"], hello_image

    return create


def test_health_check_that_fails_keeps_old(agent, deployed):
    arn, image = deployed("badhealth")
    client = agent.client()
    client.update_service(
        ServiceArn=arn,
        HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/no-such-path", "Interval": 1},
    )
    wait_status(client, arn, "RUNNING", timeout=120)
    op = operations(client, arn)[0]
    assert (op["Type"], op["Status"]) == ("UPDATE_SERVICE", "ROLLBACK_SUCCEEDED")
    health = client.describe_service(ServiceArn=arn)["Service"]["HealthCheckConfiguration"]
    assert health["Protocol"] == "TCP"  # the previous configuration, restored
    one_revision_serving(agent, "badhealth", arn, None)


def test_wrong_port_fails_and_old_serves(agent, deployed):
    arn, image = deployed("wrongport")
    client = agent.client()
    # The app listens on 8080 whatever PORT says; the service is told 9999.
    client.update_service(
        ServiceArn=arn,
        SourceConfiguration=image_source(
            image, port="9999", StartCommand="PORT=8080 exec python3 /app/app.py"
        ),
    )
    wait_status(client, arn, "RUNNING", timeout=120)
    assert operations(client, arn)[0]["Status"] == "ROLLBACK_SUCCEEDED"
    one_revision_serving(agent, "wrongport", arn, None)


def test_crash_after_going_live_rolls_back(agent, deployed, push_variant):
    arn, image = deployed("crashy")
    client = agent.client()
    push_variant(image, APP_VERSION="crashes")
    client.update_service(
        ServiceArn=arn,
        SourceConfiguration=image_source(
            image, StartCommand="timeout 5 python3 /app/app.py; exit 3"
        ),
    )
    # It goes live first...
    wait_for(
        lambda: agent.get("crashy", "/env/APP_VERSION").text.strip() == "crashes",
        60,
        "the crashing revision to go live",
    )
    wait_status(client, arn, "RUNNING", timeout=60)
    op = operations(client, arn)[0]
    assert (op["Type"], op["Status"]) == ("UPDATE_SERVICE", "ROLLBACK_SUCCEEDED")
    log = CliRunner().invoke(app, ["logs", "crashy", "--deployment", op["Id"]], env=agent.env)
    assert "crashed" in log.output and "after going live" in log.output
    one_revision_serving(agent, "crashy", arn, None)


def test_explicit_rollback_without_rebuild(agent, deployed, push_variant):
    arn, image = deployed("rollme")
    client = agent.client()
    push_variant(image, APP_VERSION="2")
    client.start_deployment(ServiceArn=arn)
    wait_for(lambda: agent.get("rollme", "/env/APP_VERSION").text.strip() == "2", 60, "v2")
    wait_status(client, arn, "RUNNING")
    runner = CliRunner()
    listed = runner.invoke(app, ["revisions", "rollme", "--json"], env=agent.env)
    revisions = json.loads(listed.output)["Revisions"]
    assert len(revisions) == 2
    result = runner.invoke(app, ["rollback", "rollme"], env=agent.env)
    assert result.exit_code == 0, result.output
    one_revision_serving(agent, "rollme", arn, None)
    op = operations(client, arn)[0]
    assert (op["Type"], op["Status"]) == ("START_DEPLOYMENT", "SUCCEEDED")
    result = runner.invoke(app, ["rollback", "rollme", "--to", "sha256:0000"], env=agent.env)
    assert result.exit_code == 1 and "can roll back to" in result.output


def test_delete_mid_deployment_cancels(agent, deployed, push_variant):
    arn, image = deployed("deleteme", HealthCheckConfiguration=SLOW_HEALTH)
    client = agent.client()
    service_id = client.describe_service(ServiceArn=arn)["Service"]["ServiceId"]
    push_variant(image, APP_VERSION="never")
    client.start_deployment(ServiceArn=arn)
    wait_for(lambda: len(service_containers(service_id)) == 2, 30, "the new instance to start")
    started = time.monotonic()
    client.delete_service(ServiceArn=arn)
    wait_status(client, arn, "DELETED", timeout=60)
    assert time.monotonic() - started < 30
    assert service_containers(service_id) == []
    ops = {o["Type"]: o["Status"] for o in operations(client, arn)}
    assert ops["START_DEPLOYMENT"] == "FAILED"


def test_runtime_crash_and_lost_instance_are_handled(agent, deployed):
    arn, _ = deployed("keepup")
    client = agent.client()
    service_id = client.describe_service(ServiceArn=arn)["Service"]["ServiceId"]
    (first,) = service_containers(service_id)
    first.exec_run(["sh", "-c", "kill 1"])  # the app exits; the restart policy brings it back
    runner = CliRunner()

    def events() -> str:
        return runner.invoke(app, ["logs", "keepup"], env=agent.env).output

    wait_for(lambda: "the engine restarted it" in events(), 30, "the crash to be reported")
    wait_for(lambda: agent.get("keepup").status_code == 200, 30, "serving again")
    first.remove(force=True)  # gone for good: a replacement starts
    wait_for(lambda: "replaces a lost one" in events(), 60, "a replacement")
    wait_for(lambda: agent.get("keepup").status_code == 200, 30, "serving again")
    one_revision_serving(agent, "keepup", arn, None)


def kill_when(agent, condition, what: str) -> None:
    wait_for(condition, 60, what)
    agent.kill()
    agent.start()


def test_kill_9_right_after_new_instances_start(agent, deployed, push_variant):
    arn, image = deployed("killstart", HealthCheckConfiguration=SLOW_HEALTH)
    client = agent.client()
    service_id = client.describe_service(ServiceArn=arn)["Service"]["ServiceId"]
    push_variant(image, APP_VERSION="after-kill")
    client.start_deployment(ServiceArn=arn)
    kill_when(agent, lambda: len(service_containers(service_id)) == 2, "the new instance to start")
    one_revision_serving(agent, "killstart", arn, "after-kill")


def test_kill_9_during_route_switch(agent, deployed, push_variant):
    arn, image = deployed("killswitch")
    client = agent.client()
    push_variant(image, APP_VERSION="switched")
    client.start_deployment(ServiceArn=arn)
    # Live already (route switched), the old instance still up in the settle window.
    kill_when(
        agent,
        lambda: agent.get("killswitch", "/env/APP_VERSION").text.strip() == "switched",
        "the switch",
    )
    one_revision_serving(agent, "killswitch", arn, "switched")
    assert operations(agent.client(), arn)[0]["Status"] == "SUCCEEDED"


@pytest.mark.alone  # every container on the host stops with dockerd
def test_dockerd_restart_brings_instances_and_routes_back(agent, deployed):
    arn, _ = deployed("dockerd")
    pid = int(Path("/run/docker.pid").read_text())  # the host's: not a test cluster's
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 60, "dockerd to stop")
    subprocess.Popen(
        [c.decode() for c in cmdline],
        stdout=open("/var/log/slipway-dockerd.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for(lambda: docker.from_env().ping(), 60, "dockerd to answer again")
    wait_for(lambda: agent.get("dockerd").status_code == 200, 60, "the route to follow")
    one_revision_serving(agent, "dockerd", arn, None)


def test_kill_9_during_build(agent, tmp_path):
    """The build is cut off with the agent; the next agent starts it again and finishes."""
    examples = Path(__file__).resolve().parents[2] / "examples" / "python-hello"
    files = {p.name: p.read_text() for p in examples.iterdir() if p.is_file()}
    files["apprunner.yaml"] = files["apprunner.yaml"].replace(
        "      - pip install -r requirements.txt",
        "      - sleep 4\n      - pip install -r requirements.txt",
    )
    with GitServer(tmp_path / "git") as git:
        git.create_repo("slowbuild", files)
        client = agent.client()
        created = client.create_service(
            ServiceName="slowbuild",
            SourceConfiguration=code_source(git.url("slowbuild"), auto=None),
        )
        arn, op_id = created["Service"]["ServiceArn"], created["OperationId"]
        runner = CliRunner()
        kill_when(
            agent,
            lambda: (
                "sleep 4"
                in runner.invoke(
                    app, ["logs", "slowbuild", "--deployment", op_id], env=agent.env
                ).output
            ),
            "the build to run",
        )
        wait_status(agent.client(), arn, "RUNNING", timeout=300)
        assert agent.get("slowbuild").text.strip() == "Hello from python-hello"
        # Nothing of the cut-off build is left; the directory itself is gone when the
        # next agent found the image already built (the engine finished it) and built nothing.
        builds = agent.root / "data" / "builds"
        assert not builds.exists() or list(builds.iterdir()) == []
        service_id = created["Service"]["ServiceId"]
        wait_for(lambda: len(service_containers(service_id)) == 1, 30, "one instance")
