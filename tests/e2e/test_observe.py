"""What a person running slipway sees: EventBridge-shaped events, signed notifications
that survive an agent restart, and an audit trail without secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from harness import free_port, wait_for, wait_status
from typer.testing import CliRunner

from slipway.cli import app

pytestmark = pytest.mark.e2e
PLANTED = "planted-" + uuid.uuid4().hex


class Receiver:
    """A notification target on loopback that records what it is sent."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[dict, bytes]] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def codes(self, service: str) -> list[str]:
        out = []
        for _, body in self.received:
            detail = json.loads(body)["detail"]
            if detail["serviceName"] == service and "operationStatus" in detail:
                out.append(detail["operationStatus"])
        return out


def test_events_notifications_and_audit(agent, hello_image, tmp_path):
    runner = CliRunner()

    def slipway(*args: str) -> str:
        result = runner.invoke(app, list(args), env=agent.env)
        assert result.exit_code == 0, result.output
        return result.output

    receiver = Receiver(free_port())
    receiver.start()
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
        SourceConfiguration={
            "ImageRepository": {
                "ImageIdentifier": hello_image,
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": {
                    "Port": "8080",
                    "RuntimeEnvironmentVariables": {"DB_PASSWORD": PLANTED},
                },
            },
            "AutoDeploymentsEnabled": False,
        },
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    wait_for(
        lambda: (
            receiver.codes("observed")
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
            receiver.codes("observed")
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
    import time

    client = agent.client()
    arn = client.create_service(
        ServiceName="chatty",
        SourceConfiguration={
            "ImageRepository": {"ImageIdentifier": hello_image, "ImageRepositoryType": "ECR"},
            "AutoDeploymentsEnabled": False,
        },
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
