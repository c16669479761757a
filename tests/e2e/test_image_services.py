"""An image service's whole life through boto3, the slipway CLI and the AWS CLI, with
the real Docker engine, Caddy and a local registry."""

from __future__ import annotations

import json
import subprocess

import pytest
from typer.testing import CliRunner

from slipway.cli import app
from testkit.harness import (
    aws_cli,
    image_source,
    operations,
    service_containers,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e


def test_boto3_lifecycle(agent, hello_image, push_variant):
    client = agent.client()
    created = client.create_service(
        ServiceName="lifecycle",
        SourceConfiguration=image_source(
            hello_image, RuntimeEnvironmentVariables={"GREETING": "one"}
        ),
        HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health", "Interval": 1},
    )
    arn = created["Service"]["ServiceArn"]
    service_id = created["Service"]["ServiceId"]
    assert created["Service"]["Status"] == "OPERATION_IN_PROGRESS"
    assert created["Service"]["ServiceUrl"] == f"lifecycle.localhost:{agent.http_port}"

    wait_status(client, arn, "RUNNING")
    answer = agent.get("lifecycle")
    assert answer.status_code == 200
    assert answer.text.strip() == "Hello from slipway! GREETING=one"

    client.update_service(
        ServiceArn=arn,
        SourceConfiguration=image_source(
            hello_image, RuntimeEnvironmentVariables={"GREETING": "two"}
        ),
    )
    described = wait_status(client, arn, "RUNNING")
    assert described["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"][
        "RuntimeEnvironmentVariables"
    ] == {"GREETING": "two"}
    assert agent.get("lifecycle").text.strip() == "Hello from slipway! GREETING=two"
    ops = operations(client, arn)
    assert [(o["Type"], o["Status"]) for o in ops] == [
        ("UPDATE_SERVICE", "SUCCEEDED"),
        ("CREATE_SERVICE", "SUCCEEDED"),
    ]
    assert len([c for c in service_containers(service_id) if c.status == "running"]) == 1

    client.pause_service(ServiceArn=arn)
    wait_status(client, arn, "PAUSED")
    paused = agent.get("lifecycle")
    assert paused.status_code == 503
    assert "paused" in paused.text
    assert service_containers(service_id) == []

    # A newer image under the same tag must not be what resume brings back.
    push_variant(hello_image, APP_VERSION="2")
    client.resume_service(ServiceArn=arn)
    wait_status(client, arn, "RUNNING")
    assert agent.get("lifecycle").text.strip() == "Hello from slipway! GREETING=two"
    assert agent.get("lifecycle", "/env/APP_VERSION").status_code == 404

    # StartDeployment takes the tag's newest digest.
    client.start_deployment(ServiceArn=arn)
    wait_for(
        lambda: agent.get("lifecycle", "/env/APP_VERSION").text.strip() == "2",
        what="the new revision to serve",
    )
    wait_status(client, arn, "RUNNING")

    deleted = client.delete_service(ServiceArn=arn)
    assert deleted["Service"]["Status"] == "OPERATION_IN_PROGRESS"
    wait_status(client, arn, "DELETED")
    assert service_containers(service_id) == []
    assert agent.get("lifecycle").status_code == 404
    assert [o["Type"] for o in operations(client, arn)][:4] == [
        "DELETE_SERVICE",
        "START_DEPLOYMENT",
        "RESUME_SERVICE",
        "PAUSE_SERVICE",
    ]


def test_cli_lifecycle(agent, hello_image):
    runner = CliRunner()
    env = agent.env

    def slipway(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    def status() -> str:
        return json.loads(slipway("services", "describe", "clidemo", "--json"))["Status"]

    out = slipway("services", "create", "clidemo", "--image", hello_image, "--env", "GREETING=cli")
    assert f"http://clidemo.localhost:{agent.http_port}" in out
    wait_for(lambda: status() == "RUNNING", 90, "clidemo RUNNING")
    assert agent.get("clidemo").text.strip() == "Hello from slipway! GREETING=cli"
    assert "clidemo" in slipway("services", "list")

    slipway("services", "pause", "clidemo")
    wait_for(lambda: status() == "PAUSED", 60, "clidemo PAUSED")
    assert agent.get("clidemo").status_code == 503
    slipway("services", "resume", "clidemo")
    wait_for(lambda: status() == "RUNNING", 90, "clidemo RUNNING again")
    assert agent.get("clidemo").status_code == 200

    slipway("deploy", "clidemo")
    wait_for(lambda: status() == "RUNNING", 90, "deployment done")
    ops = json.loads(slipway("operations", "clidemo", "--json"))
    assert [o["Type"] for o in ops] == [
        "START_DEPLOYMENT",
        "RESUME_SERVICE",
        "PAUSE_SERVICE",
        "CREATE_SERVICE",
    ]
    assert {o["Status"] for o in ops} == {"SUCCEEDED"}

    service = json.loads(slipway("services", "describe", "clidemo", "--json"))
    slipway("services", "delete", "clidemo")
    wait_for(lambda: service_containers(service["ServiceId"]) == [], 60, "containers gone")

    # The containers go first; the service is DELETED once its network is gone too.
    def gone():
        result = runner.invoke(app, ["services", "describe", "clidemo"], env=env)
        return result if result.exit_code else None

    failed = wait_for(gone, 60, "the service deleted")
    assert failed.exit_code == 1
    assert failed.output.strip() == "error: ResourceNotFoundException: no service named clidemo"


def test_aws_cli_with_created_key(agent, tmp_path):
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--json"], env=agent.env)
    assert created.exit_code == 0, created.output
    key = json.loads(created.output)
    creds = tmp_path / "credentials"
    creds.write_text(
        "[ci]\n"
        f"aws_access_key_id = {key['AccessKeyId']}\n"
        f"aws_secret_access_key = {key['SecretAccessKey']}\n"
    )

    def list_services() -> subprocess.CompletedProcess:
        return aws_cli(agent, "list-services", profile="ci", credentials=creds)

    result = list_services()
    assert result.returncode == 0, result.stderr
    assert "ServiceSummaryList" in json.loads(result.stdout)

    creds.write_text(creds.read_text().replace(key["SecretAccessKey"], "x" * 40))
    denied = list_services()
    assert denied.returncode != 0
    assert "InvalidSignatureException" in denied.stderr
