"""Access policies and key lifecycle, end to end, as an operator sets them up with the
real CLI and as attackers holding weaker keys try to go further with boto3:

* a deployer key whose policy is limited by ``aws:ResourceTag/team = web`` deploys and
  pauses the ``team=web`` service, and gets AccessDeniedException (403) for the
  ``team=db`` one, for DeleteService and for minting keys;
* a read-only key describes and lists, and nothing else;
* a disabled key is refused on its very next request, and works again once enabled;
* a bad policy is refused naming the field, and nothing is stored;
* every denial is in ``slipway audit``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from slipway.client import ApiError, Client
from testkit.harness import image_source, operations, wait_for, wait_status

pytestmark = pytest.mark.e2e


def new_key(agent, principal: str) -> tuple[str, str]:
    created = json.loads(agent.cli("keys", "create", "--principal", principal, "--json").stdout)
    assert created["Principal"] == principal
    return created["AccessKeyId"], created["SecretAccessKey"]


def denied(call: Any, **params: Any) -> dict[str, Any]:
    """The error of a call that must be refused by a policy."""
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    assert response["Error"]["Code"] == "AccessDeniedException", response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return response["Error"]


def settled(client: Any, arn: str, operation_id: str, status: str) -> None:
    """Wait for an operation to end SUCCEEDED, leaving the service in ``status``."""

    def ended() -> bool:
        (op,) = [o for o in operations(client, arn) if o["Id"] == operation_id]
        assert op["Status"] in ("PENDING", "IN_PROGRESS", "SUCCEEDED"), op
        return op["Status"] == "SUCCEEDED"

    wait_for(ended, 90, f"operation {operation_id}")
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == status


def web_deployer_policy(tmp_path: Path) -> Path:
    path = tmp_path / "web-deployer.json"
    path.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": [
                            "apprunner:StartDeployment",
                            "apprunner:PauseService",
                            "apprunner:ResumeService",
                            "apprunner:Describe*",
                            "apprunner:ListOperations",
                        ],
                        "Resource": "arn:aws:apprunner:us-east-1:000000000000:service/*",
                        "Condition": {"StringEquals": {"aws:ResourceTag/team": "web"}},
                    }
                ],
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def services(agent, push_hello) -> dict[str, str]:
    """Two running services, tagged team=web and team=db, made with the root key."""
    image = push_hello()
    root = agent.client()
    arns = {}
    for team in ("web", "db"):
        arns[team] = root.create_service(
            ServiceName=f"access-{team}",
            SourceConfiguration=image_source(image),
            Tags=[{"Key": "team", "Value": team}],
        )["Service"]["ServiceArn"]
    for arn in arns.values():
        wait_status(root, arn, "RUNNING")
    return arns


def test_a_deployer_limited_to_team_web(agent, services, tmp_path):
    agent.cli("principals", "create", "web-ci")
    attached = agent.cli(
        "principals", "attach-policy", "web-ci", "--file", str(web_deployer_policy(tmp_path))
    )
    assert "Attached web-deployer to web-ci" in attached.stdout
    key_id, secret = new_key(agent, "web-ci")
    ci = agent.client(key_id=key_id, secret=secret)

    # What it may do: deploy, pause and resume the team=web service.
    web = services["web"]
    settled(ci, web, ci.start_deployment(ServiceArn=web)["OperationId"], "RUNNING")
    settled(ci, web, ci.pause_service(ServiceArn=web)["OperationId"], "PAUSED")
    settled(ci, web, ci.resume_service(ServiceArn=web)["OperationId"], "RUNNING")

    # What it may not: the team=db service, deleting, listing, minting keys.
    error = denied(ci.start_deployment, ServiceArn=services["db"])
    assert (
        "user/web-ci is not authorized to perform: apprunner:StartDeployment" in (error["Message"])
    )
    denied(ci.pause_service, ServiceArn=services["db"])
    denied(ci.describe_service, ServiceArn=services["db"])
    denied(ci.delete_service, ServiceArn=services["web"])
    denied(ci.list_services)
    stolen = Client(agent.endpoint, key_id, secret)
    with pytest.raises(ApiError) as caught:
        stolen.signed("POST", "/slipway/v1/keys", {"Principal": "root"})
    assert caught.value.code == "AccessDeniedException"
    with pytest.raises(ApiError) as caught:
        stolen.signed("PUT", "/slipway/v1/principals/web-ci/policies/administrator", {})
    assert caught.value.code == "AccessDeniedException"

    # Nothing it was refused happened.
    root = agent.client()
    assert root.describe_service(ServiceArn=services["db"])["Service"]["Status"] == "RUNNING"
    assert root.describe_service(ServiceArn=services["web"])["Service"]["Status"] == "RUNNING"
    keys = json.loads(agent.cli("keys", "list", "--json").stdout)
    assert {k["Principal"] for k in keys} == {"root", "web-ci"}
    listed = json.loads(agent.cli("principals", "list", "--json").stdout)
    assert {p["Principal"]: p["Policies"] for p in listed}["web-ci"] == ["web-deployer"]
    (ci_key,) = [k for k in keys if k["AccessKeyId"] == key_id]
    assert ci_key["LastUsedAt"]  # recorded, lazily

    # Every denial is in the audit trail, with the key that was refused.
    audit = json.loads(agent.cli("audit", "--json").stdout)
    refused = {
        r["Operation"]
        for r in audit
        if r["AccessKeyId"] == key_id and r["Outcome"] == "AccessDeniedException"
    }
    assert refused >= {
        "StartDeployment",
        "PauseService",
        "DescribeService",
        "DeleteService",
        "ListServices",
        "slipway:CreateKey",
        "slipway:AttachPolicy",
    }, refused
    table = agent.cli("audit").stdout
    assert "AccessDeniedException" in table and key_id in table


def test_a_read_only_key_only_describes_and_lists(agent, services, push_hello):
    agent.cli("principals", "create", "viewer")
    agent.cli("principals", "attach-policy", "viewer", "read-only")
    key_id, secret = new_key(agent, "viewer")
    viewer = agent.client(key_id=key_id, secret=secret)

    names = {s["ServiceName"] for s in viewer.list_services()["ServiceSummaryList"]}
    assert {"access-web", "access-db"} <= names
    assert viewer.describe_service(ServiceArn=services["db"])["Service"]["ServiceName"]
    assert viewer.list_operations(ServiceArn=services["db"])["OperationSummaryList"]
    assert viewer.list_tags_for_resource(ResourceArn=services["db"])["Tags"]

    denied(
        viewer.create_service,
        ServiceName="access-sneaky",
        SourceConfiguration=image_source(push_hello()),
    )
    denied(viewer.start_deployment, ServiceArn=services["db"])
    denied(viewer.pause_service, ServiceArn=services["db"])
    denied(viewer.tag_resource, ResourceArn=services["db"], Tags=[{"Key": "team", "Value": "web"}])
    names = {s["ServiceName"] for s in agent.client().list_services()["ServiceSummaryList"]}
    assert "access-sneaky" not in names
    audit = json.loads(agent.cli("audit", "--json").stdout)
    refused = {
        r["Operation"]
        for r in audit
        if r["AccessKeyId"] == key_id and r["Outcome"] == "AccessDeniedException"
    }
    assert refused == {"CreateService", "StartDeployment", "PauseService", "TagResource"}


def test_a_disabled_key_is_refused_on_its_next_request(agent, services):
    agent.cli("principals", "create", "ops")
    agent.cli("principals", "attach-policy", "ops", "read-only")
    key_id, secret = new_key(agent, "ops")
    ops = agent.client(key_id=key_id, secret=secret)
    assert ops.describe_service(ServiceArn=services["web"])

    before = max(r["Id"] for r in json.loads(agent.cli("audit", "--json").stdout))
    agent.cli("keys", "disable", key_id)
    with pytest.raises(ClientError) as caught:
        ops.describe_service(ServiceArn=services["web"])
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"

    agent.cli("keys", "enable", key_id)
    assert ops.describe_service(ServiceArn=services["web"])

    # Rotation: the new key works at once, the old one no longer.
    rotated = json.loads(agent.cli("keys", "rotate", key_id, "--json").stdout)
    assert rotated["Replaced"] == key_id and rotated["Principal"] == "ops"
    fresh = agent.client(key_id=rotated["AccessKeyId"], secret=rotated["SecretAccessKey"])
    assert fresh.describe_service(ServiceArn=services["web"])
    with pytest.raises(ClientError) as caught:
        ops.describe_service(ServiceArn=services["web"])
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"

    agent.cli("keys", "delete", rotated["AccessKeyId"])
    with pytest.raises(ClientError) as caught:
        fresh.list_services()
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"
    # The refusals are audited (a key that does not verify is recorded as no key).
    audit = json.loads(agent.cli("audit", "--json").stdout)
    refused = [
        r["Operation"]
        for r in audit
        if r["Id"] > before and r["Outcome"] == "UnrecognizedClientException"
    ]
    assert refused == ["DescribeService", "DescribeService", "ListServices"]


@pytest.fixture(scope="module")
def bad_input_target(agent) -> str:
    agent.cli("principals", "create", "bad-input-target")
    return "bad-input-target"


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("{not json", "PolicyDocument: not valid JSON"),
        (
            {"Statement": [{"Effect": "Allow", "Action": "apprunner:Launch", "Resource": "*"}]},
            "Statement[0].Action",
        ),
        (
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "*",
                        "Resource": "arn:aws:apprunner:eu-west-3:000000000000:service/*",
                    }
                ]
            },
            "Statement[0].Resource",
        ),
        (
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "*",
                        "Resource": "*",
                        "Condition": {"NumericEquals": {"aws:ResourceTag/n": "1"}},
                    }
                ]
            },
            "Statement[0].Condition.NumericEquals",
        ),
    ],
)
def test_bad_policies_are_refused_naming_the_field(
    agent, bad_input_target, tmp_path, document, field
):
    path = tmp_path / "policy.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    done = agent.cli(
        "principals", "attach-policy", "bad-input-target", "--file", str(path), ok=False
    )
    assert field in done.stderr and "InvalidRequestException" in done.stderr, done.stderr
    listed = json.loads(agent.cli("principals", "list", "--json").stdout)
    assert {p["Principal"]: p["Policies"] for p in listed}["bad-input-target"] == []


def test_a_lost_credentials_file_is_recovered_by_the_local_root_command(agent, services):
    old_key, _ = agent.credentials()
    agent.credentials_file.unlink()  # the operator lost it
    assert "no slipway credentials" in agent.cli("keys", "list", ok=False).stderr

    done = agent.cli("keys", "recover-root")
    new_key, _ = agent.credentials()
    assert new_key != old_key and new_key in done.stdout
    assert agent.client().describe_service(ServiceArn=services["web"])  # an administrator
    keys = {k["AccessKeyId"]: k for k in json.loads(agent.cli("keys", "list", "--json").stdout)}
    assert keys[new_key]["Principal"] == "root" and keys[new_key]["Status"] == "Active"
