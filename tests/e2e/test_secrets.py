"""Secrets bound to services, end to end: a secret put with the real CLI and granted to
one service reaches that service's instance environment and no other; a deployment of a
service it is not granted to fails naming the secret; revoking it fails the next
deployment while the running revision keeps serving; and the value appears nowhere the
agent writes (its log, deployment logs, events, the audit trail, the store). A file of
the secrets directory becomes a secret at start, readable only once granted."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from testkit.harness import (
    image_source,
    live_containers,
    operations,
    service_containers,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e

PLANTED = f"planted-{uuid.uuid4().hex}"
REFERENCE = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf"


def everything_on_disk(root: Path) -> bytes:
    """Every file the agent wrote: its log, the store (WAL included), log streams."""
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_a_secret_reaches_only_the_service_it_is_granted_to(agent, hello_image):
    put = agent.cli(
        "secrets", "put", "db-password", "--service", "granted", stdin=PLANTED + "\n"
    ).stdout
    assert put.strip() == "Created secret db-password; granted to: granted"
    listed = agent.cli("secrets", "list").stdout
    assert "db-password" in listed and "granted" in listed

    client = agent.client()
    secret_config = {"RuntimeEnvironmentSecrets": {"DB_PASSWORD": REFERENCE}}
    granted = client.create_service(
        ServiceName="granted", SourceConfiguration=image_source(hello_image, **secret_config)
    )["Service"]
    ungranted = client.create_service(
        ServiceName="ungranted", SourceConfiguration=image_source(hello_image, **secret_config)
    )["Service"]

    # The granted service's instance has it in its environment, and only there.
    wait_status(client, granted["ServiceArn"], "RUNNING")
    assert agent.get("granted", "/env/DB_PASSWORD").text.rstrip("\n") == PLANTED
    (container,) = live_containers(granted["ServiceId"])
    assert f"DB_PASSWORD={PLANTED}" in container.exec_run(["env"]).output.decode().splitlines()

    # The other one's deployment fails naming the secret; no instance of it ever ran.
    wait_status(client, ungranted["ServiceArn"], "CREATE_FAILED")
    (create,) = operations(client, ungranted["ServiceArn"])
    log = agent.cli("logs", "ungranted", "--deployment", create["Id"]).stdout
    assert "secret db-password is not granted to service ungranted" in log, log
    assert service_containers(ungranted["ServiceId"]) == []

    # Revoked: the next deployment fails, and the running revision keeps serving.
    revoked = agent.cli("secrets", "revoke", "db-password", "granted").stdout
    assert revoked.strip() == "Secret db-password granted to: (none)"
    op_id = client.start_deployment(ServiceArn=granted["ServiceArn"])["OperationId"]
    wait_for(
        lambda: operations(client, granted["ServiceArn"])[0]["Status"] == "FAILED",
        60,
        "the deployment after the revoke to fail",
    )
    log = agent.cli("logs", "granted", "--deployment", op_id).stdout
    assert "secret db-password is not granted to service granted" in log, log
    assert client.describe_service(ServiceArn=granted["ServiceArn"])["Service"]["Status"] == (
        "RUNNING"
    )
    assert agent.get("granted").text.strip().startswith("Hello from slipway!")

    # The value was written nowhere: not in events, the audit trail (whose PutSecret row
    # is there, its value hidden), the agent's log or any file of the agent.
    audit = json.loads(agent.cli("audit", "--json").stdout)
    (put_row,) = [row for row in audit if row["Operation"] == "slipway:PutSecret"]
    assert put_row["Params"]["SecretString"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    events = agent.cli("events", "--json").stdout
    assert "CREATE_FAILED" in events
    for text in (json.dumps(audit), events, agent.log_text()):
        assert PLANTED not in text
    assert PLANTED.encode() not in everything_on_disk(agent.root)


def test_a_secret_file_is_imported_at_start_with_no_grants(agent, hello_image):
    from_file = f"from-file-{uuid.uuid4().hex}"
    files = agent.root / "conf" / "secrets"
    files.mkdir(parents=True, exist_ok=True)
    (files / "api-token").write_text(from_file + "\n")
    agent.kill()
    agent.start()
    (row,) = [
        r
        for r in json.loads(agent.cli("secrets", "list", "--json").stdout)
        if r["Name"] == "api-token"
    ]
    assert row["Grants"] == []

    client = agent.client()
    secret_config = {"RuntimeEnvironmentSecrets": {"API_TOKEN": "api-token"}}
    refused = client.create_service(
        ServiceName="file-refused", SourceConfiguration=image_source(hello_image, **secret_config)
    )["Service"]
    wait_status(client, refused["ServiceArn"], "CREATE_FAILED")
    assert service_containers(refused["ServiceId"]) == []

    agent.cli("secrets", "grant", "api-token", "file-reader")
    reader = client.create_service(
        ServiceName="file-reader", SourceConfiguration=image_source(hello_image, **secret_config)
    )["Service"]
    wait_status(client, reader["ServiceArn"], "RUNNING")
    assert agent.get("file-reader", "/env/API_TOKEN").text.rstrip("\n") == from_file
    assert from_file not in agent.log_text()
