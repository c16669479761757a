"""Worker services (the ``slipway:worker`` tag, ``services create --worker``) on the real
parts: a worker built from git runs without a port or route, its output reaches the
logs, a crash is restarted and reported, and a new revision replaces it start-first; a
busybox worker made with the CLI rolls out stop-first (``--single``), pauses and resumes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import botocore.exceptions
import pytest
from test_code_services import example_files

from slipway.workers import WORKER_TAG
from testkit.gitserver import GitServer
from testkit.harness import (
    code_source,
    image_source,
    live_containers,
    operations,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {"worker_up_seconds": 2, "build_timeout": 300, "metrics_stats_interval": 1}
TICKER = (
    "trap 'echo stopping $VERSION; exit 0' TERM; echo started $VERSION;"
    " while true; do echo tick $VERSION; sleep 1 & wait $!; done"
)


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


def app_lines(agent, name: str) -> list[str]:
    """The service's app output, every instance merged by time, as ``slipway logs`` prints it."""
    return agent.cli("logs", name, "--app").stdout.splitlines()


def first(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if line.endswith(text))


def services(client) -> dict[str, dict]:
    return {s["ServiceName"]: s for s in client.list_services()["ServiceSummaryList"]}


def events(agent, name: str) -> str:
    return agent.cli("logs", name).stdout


def test_a_worker_from_git_runs_crashes_is_restarted_and_replaced(agent, git):
    git.create_repo("python-worker", example_files("python-worker"))
    client = agent.client()
    created = client.create_service(
        ServiceName="ticks",
        SourceConfiguration=code_source(git.url("python-worker")),
        Tags=[{"Key": WORKER_TAG, "Value": "true"}],
    )
    arn = created["Service"]["ServiceArn"]
    service = wait_status(client, arn, "RUNNING", timeout=300)
    assert agent.get("ticks").status_code == 404  # no route: nothing answers for it
    wait_for(lambda: "tick 3 version 1" in "\n".join(app_lines(agent, "ticks")), 60, "ticks")
    (container,) = live_containers(service["ServiceId"])
    assert not container.attrs["HostConfig"]["PortBindings"]  # it publishes nothing

    # A crash: the engine restarts it, the events say so, the service stays RUNNING.
    assert container.exec_run(["touch", "/tmp/crash"]).exit_code == 0
    wait_for(
        lambda: "exited; the engine restarted it (restart 1)" in events(agent, "ticks"),
        60,
        "the restart to be reported",
    )
    lines = app_lines(agent, "ticks")
    assert sum(line.endswith("worker version 1 started") for line in lines) == 2
    assert first(lines, "crashing on purpose") < len(lines) - 1
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING"
    labels = {"service": "ticks", "instance": container.name}
    wait_for(lambda: agent.metric("slipway_instance_restarts", **labels) == 1, 30, "restarts")
    memory = "slipway_instance_memory_utilization_percent"
    wait_for(lambda: agent.metric(memory, **labels) > 0, 30, "the worker's memory use")

    # A new revision (an update with env) replaces it, the new up before the old stops.
    values = {
        "Runtime": "PYTHON_3",
        "StartCommand": "python3 worker.py",
        "RuntimeEnvironmentVariables": {"VERSION": "2"},
    }
    source = code_source(git.url("python-worker"))
    source["CodeRepository"]["CodeConfiguration"] = {
        "ConfigurationSource": "API",
        "CodeConfigurationValues": values,
    }
    client.update_service(ServiceArn=arn, SourceConfiguration=source)
    wait_status(client, arn, "RUNNING", timeout=300)
    assert operations(client, arn)[0]["Status"] == "SUCCEEDED"
    wait_for(lambda: any("worker version 1 stopping" in x for x in app_lines(agent, "ticks")))
    lines = app_lines(agent, "ticks")
    assert first(lines, "worker version 2 started") < first(lines, "worker version 1 stopping")
    (fresh,) = live_containers(service["ServiceId"])
    assert fresh.id != container.id
    client.delete_service(ServiceArn=arn)  # its built images go with it
    wait_status(client, arn, "DELETED")


@pytest.fixture
def ticker_image(docker_client, registry, busybox_image) -> Iterator[str]:
    tag = f"t{uuid.uuid4().hex[:10]}"
    registry.push(docker_client, busybox_image, "examples/busybox", tag)
    image = f"{registry.host}/examples/busybox:{tag}"
    yield image
    docker_client.images.remove(image, noprune=True)


def test_an_image_worker_from_the_cli_rolls_out_stop_first(agent, ticker_image):
    refused = agent.cli(
        "services",
        "create",
        "badworker",
        "--image",
        ticker_image,
        "--worker",
        "--port",
        "80",
        ok=False,
    )
    assert "a worker service has no HTTP port; leave out --port" in refused.stderr
    client = agent.client()
    tags = [{"Key": WORKER_TAG, "Value": "single"}]
    bad_inputs = [
        ({"SourceConfiguration": image_source(ticker_image)}, "ImageConfiguration.Port"),
        (
            {
                "SourceConfiguration": image_source(ticker_image, port=None),
                "HealthCheckConfiguration": {"Protocol": "HTTP", "Path": "/"},
            },
            "HealthCheckConfiguration: a worker service is healthy while its process stays up",
        ),
    ]
    for params, message in bad_inputs:
        with pytest.raises(botocore.exceptions.ClientError, match=message) as caught:
            client.create_service(ServiceName="badworker", Tags=tags, **params)
        assert caught.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "badworker" not in services(client)  # nothing stored

    made = agent.cli(
        "services", "create", "tocks", "--image", ticker_image, "--worker", "--single",
        "--start-command", TICKER, "--env", "VERSION=1",
    )  # fmt: skip
    assert "Worker: no HTTP port, no URL" in made.stdout
    arn = services(client)["tocks"]["ServiceArn"]
    assert client.list_tags_for_resource(ResourceArn=arn)["Tags"] == tags
    wait_status(client, arn, "RUNNING")
    wait_for(lambda: "tick 1" in "\n".join(app_lines(agent, "tocks")), 60, "ticks")

    client.update_service(
        ServiceArn=arn,
        SourceConfiguration=image_source(
            ticker_image,
            port=None,
            StartCommand=TICKER,
            RuntimeEnvironmentVariables={"VERSION": "2"},
        ),
    )
    wait_status(client, arn, "RUNNING")
    wait_for(lambda: any(x.endswith("tick 2") for x in app_lines(agent, "tocks")), 60, "v2")
    lines = app_lines(agent, "tocks")
    assert first(lines, "stopping 1") < first(lines, "started 2")  # never two at once

    client.pause_service(ServiceArn=arn)
    service = wait_status(client, arn, "PAUSED")
    assert live_containers(service["ServiceId"]) == []
    client.resume_service(ServiceArn=arn)
    wait_status(client, arn, "RUNNING")
    (container,) = live_containers(service["ServiceId"])
    wait_for(lambda: b"tick 2" in container.logs(), 30, "the resumed worker's output")
    client.delete_service(ServiceArn=arn)
    wait_status(client, arn, "DELETED")
