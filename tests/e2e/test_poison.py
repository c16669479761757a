"""A poison operation: one that kills the agent each time it runs (the test hook
SLIPWAY_TEST_CRASH_ON, standing in for an out-of-memory kill) ends FAILED after
operation_max_interruptions restarts instead of crash-looping the agent, while a
neighbour created beside it deploys and answers through Caddy."""

from __future__ import annotations

import contextlib
import json

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError
from typer.testing import CliRunner

from slipway.cli import app
from slipway.operations.testhook import EXIT_CODE
from testkit.harness import AgentProcess, image_source, operations, wait_status

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {"test_crash_on": "poison", "operation_max_interruptions": 2}


def restarted_until_it_dies(agent) -> int:
    """Start the agent again; it may die before or after it first answers. Its exit code."""
    with contextlib.suppress(AssertionError):  # it exited before /healthz answered
        agent.start()
    return agent.proc.wait(timeout=180)


def cli(agent, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=agent.env)
    assert result.exit_code == 0, result.output
    return result.output


def test_an_operation_that_kills_the_agent_ends_failed_and_others_deploy(agent, hello_image):
    client = agent.client()
    neighbour = client.create_service(
        ServiceName="neighbour", SourceConfiguration=image_source(hello_image)
    )["Service"]["ServiceArn"]
    # The agent may die running it before its answer is sent: the call then fails, and
    # the service, stored before it ran, is found by name below.
    with contextlib.suppress(EndpointConnectionError, ConnectionClosedError):
        client.create_service(ServiceName="poison", SourceConfiguration=image_source(hello_image))

    # Interrupted once: the agent dies running it, and again when it retries it.
    assert agent.proc.wait(timeout=120) == EXIT_CODE
    assert restarted_until_it_dies(agent) == EXIT_CODE
    # Interrupted twice: the next agent ends it instead of running it a third time.
    agent.start()
    client = agent.client()
    [poison] = [
        s["ServiceArn"]
        for s in client.list_services()["ServiceSummaryList"]
        if s["ServiceName"] == "poison"
    ]
    wait_status(client, poison, "CREATE_FAILED", timeout=60)
    wait_status(client, neighbour, "RUNNING", timeout=120)
    assert agent.get("neighbour").status_code == 200
    assert agent.proc.poll() is None

    [op] = operations(client, poison)
    assert (op["Type"], op["Status"]) == ("CREATE_SERVICE", "FAILED")
    log = cli(agent, "logs", "poison", "--deployment", op["Id"])
    assert "interrupted 2 times" in log, log
    events = [json.loads(line) for line in cli(agent, "events", "poison", "--json").splitlines()]
    failed = [e for e in events if e["detail"].get("operationStatus", "").endswith("Failed")]
    assert "interrupted 2 times" in failed[-1]["detail"]["slipway"]["reason"]
    assert [o["Status"] for o in operations(client, neighbour)] == ["SUCCEEDED"]
    assert agent.log_text().count("test hook SLIPWAY_TEST_CRASH_ON=poison") == 2


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_a_nonsense_limit_keeps_the_agent_from_starting(tmp_path, caddy_server, value):
    agent = AgentProcess(
        tmp_path, caddy_server.admin_url, caddy_server.http_port, operation_max_interruptions=value
    )
    ended = agent.cli("serve", ok=False)
    assert "operation_max_interruptions" in ended.stderr + ended.stdout
