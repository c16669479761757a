"""What a person running slipway sees: EventBridge-shaped events, signed notifications
that survive an agent restart, and an audit trail without secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest
from typer.testing import CliRunner

from slipway.cli import app
from testkit.harness import image_source, wait_for, wait_status
from testkit.receiver import Receiver

pytestmark = pytest.mark.e2e
PLANTED = "planted-" + uuid.uuid4().hex
# The receiver listens on loopback, where notification targets may point only when allowed.
AGENT_SETTINGS = {"metrics_interval": 1, "metrics_stats_interval": 2, "outbound_allow": "127.0.0.1"}


def test_events_notifications_and_audit(agent, hello_image, tmp_path):
    runner = CliRunner()

    def slipway(*args: str) -> str:
        result = runner.invoke(app, list(args), env=agent.env)
        assert result.exit_code == 0, result.output
        return result.output

    receiver = Receiver().start()
    pattern = tmp_path / "pattern.json"
    pattern.write_text(
        json.dumps(
            {
                "source": ["aws.apprunner"],
                "detail-type": ["AppRunner Service Operation Status Change"],
            }
        )
    )
    added = slipway(
        "notify", "add", f"http://127.0.0.1:{receiver.port}/hook", "--pattern", str(pattern)
    )
    secret = added.split("HMAC-SHA256): ")[1].strip()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    refused = runner.invoke(
        app, ["notify", "add", "http://x", "--pattern", str(bad)], env=agent.env
    )
    assert refused.exit_code == 1 and "not valid JSON" in refused.output

    client = agent.client()
    arn = client.create_service(
        ServiceName="observed",
        SourceConfiguration=image_source(
            hello_image, RuntimeEnvironmentVariables={"DB_PASSWORD": PLANTED}
        ),
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    wait_for(
        lambda: (
            receiver.statuses("observed")
            == ["CreateServiceStarted", "CreateServiceCompletedSuccessfully"]
        ),
        30,
        "the create events",
    )
    for headers, body in receiver.received:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Slipway-Signature"] == expected

    # The receiver is down while a deployment runs and the agent restarts: delivery resumes.
    receiver.stop()
    client.start_deployment(ServiceArn=arn)
    wait_status(client, arn, "RUNNING")
    agent.kill()
    receiver.start()
    agent.start()
    wait_for(
        lambda: (
            receiver.statuses("observed")
            == [
                "CreateServiceStarted",
                "CreateServiceCompletedSuccessfully",
                "DeploymentStarted",
                "DeploymentCompletedSuccessfully",
            ]
        ),
        60,
        "the deployment events after the restart",
    )

    listed = slipway("events", "observed")
    assert "DeploymentCompletedSuccessfully" in listed
    assert "OPERATION_IN_PROGRESS -> RUNNING" in listed

    trail = json.loads(slipway("audit", "--json"))
    creates = [r for r in trail if r["Operation"] == "CreateService"]
    assert creates and creates[0]["Outcome"] == "OK"
    assert creates[0]["AccessKeyId"] == agent.credentials()[0]
    stranger = agent.client(secret="wrong-secret")
    with pytest.raises(Exception, match="InvalidSignature"):
        stranger.list_services()
    trail = json.loads(slipway("audit", "--json"))
    assert trail[-1]["Outcome"] == "InvalidSignatureException"

    # No planted secret anywhere a person or a receiver can read.
    assert PLANTED not in json.dumps(trail)
    assert PLANTED not in slipway("events", "--json")
    assert all(PLANTED.encode() not in body for _, body in receiver.received)
    assert PLANTED not in agent.log_text()
    receiver.stop()


def test_app_output_in_instance_streams(agent, hello_image):
    import subprocess
    import sys

    client = agent.client()
    arn = client.create_service(
        ServiceName="chatty",
        SourceConfiguration=image_source(hello_image, port=None),
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    follower = subprocess.Popen(
        [sys.executable, "-m", "slipway", "logs", "chatty", "--app", "--follow"],
        env=agent.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)  # the collector follows the instance; the CLI prints its tail
        marker = f"/env/MARK{uuid.uuid4().hex[:8]}"
        sent = time.monotonic()
        agent.get("chatty", marker)
        line = ""
        while marker not in line:
            line = follower.stdout.readline()
            assert line, "the follower ended"
        assert time.monotonic() - sent < 3
        assert line.split()[2].startswith("instance/")
    finally:
        follower.kill()
    out = CliRunner().invoke(app, ["logs", "chatty", "--app"], env=agent.env).output
    assert marker in out
    streams = {line.split()[2] for line in out.splitlines() if marker in line}
    (stream,) = streams
    one = (
        CliRunner()
        .invoke(
            app, ["logs", "chatty", "--instance", stream.removeprefix("instance/")], env=agent.env
        )
        .output
    )
    assert marker in one


def test_metrics_count_requests_through_caddy(agent, hello_image):
    client = agent.client()
    arn = client.create_service(
        ServiceName="metered",
        SourceConfiguration=image_source(hello_image, port=None),
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    assert agent.get("metered").status_code == 200

    value = agent.metric
    wait_for(lambda: value("slipway_requests_total", service="metered") >= 1, 20, "a count")
    before = value("slipway_requests_total", service="metered")
    ok_before = value("slipway_responses_total", service="metered", status_class="2xx")
    missing_before = value("slipway_responses_total", service="metered", status_class="4xx")
    for _ in range(7):
        assert agent.get("metered").status_code == 200
    for _ in range(3):
        assert agent.get("metered", "/no-such-page").status_code == 404
    wait_for(
        lambda: value("slipway_requests_total", service="metered") == before + 10,
        20,
        "the requests to be counted",
    )
    agent.access_log_read()  # nothing more arrives: the count is exact
    assert value("slipway_requests_total", service="metered") == before + 10
    assert value("slipway_responses_total", service="metered", status_class="2xx") == ok_before + 7
    assert value("slipway_responses_total", service="metered", status_class="4xx") == (
        missing_before + 3
    )
    wait_for(lambda: value("slipway_active_instances", service="metered") == 1, 20, "the gauge")
    table = CliRunner().invoke(app, ["metrics", "metered"], env=agent.env)
    assert table.exit_code == 0 and "REQ" in table.output
