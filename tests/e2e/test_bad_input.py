"""Each bad input gets App Runner's precise error and leaves the store and the running
containers exactly as they were."""

from __future__ import annotations

import json

import httpx
import pytest

from testkit.harness import expect_error, image_source, wait_status

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {"service_quota": 3}


@pytest.fixture(scope="module")
def steady(agent, push_hello):
    """One running service whose state every bad call must leave alone."""
    client = agent.client()
    arn = client.create_service(
        ServiceName="steady", SourceConfiguration=image_source(push_hello(), auto=None)
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    return arn


def snapshot(agent) -> tuple:
    client = agent.client()
    services = client.list_services()["ServiceSummaryList"]
    described = [client.describe_service(ServiceArn=s["ServiceArn"])["Service"] for s in services]
    for service in described:
        service.pop("UpdatedAt")
    ops = [
        client.list_operations(ServiceArn=s["ServiceArn"])["OperationSummaryList"] for s in services
    ]
    containers = sorted((c.id, c.status) for c in agent.containers())
    return (
        json.dumps(described, default=str, sort_keys=True),
        json.dumps(ops, default=str),
        containers,
    )


@pytest.mark.parametrize(
    ("name", "field_hint"),
    [
        ("has spaces", "ServiceName"),
        ("../../etc", "ServiceName"),
        ("x" * 60, "ServiceName"),
        ("caf\u00e9-service", "ServiceName"),
        ("ab", "ServiceName"),
    ],
)
def test_names_that_break_caddy_or_docker(agent, steady, hello_image, name, field_hint):
    before = snapshot(agent)
    client = agent.client(validate=False)
    expect_error(
        lambda: client.create_service(
            ServiceName=name, SourceConfiguration=image_source(hello_image, auto=None)
        ),
        "InvalidRequestException",
        field_hint,
    )
    assert snapshot(agent) == before


def test_duplicate_name(agent, steady, hello_image):
    before = snapshot(agent)
    client = agent.client()
    expect_error(
        lambda: client.create_service(
            ServiceName="steady", SourceConfiguration=image_source(hello_image, auto=None)
        ),
        "InvalidRequestException",
        "already exists",
    )
    # Names that would answer at the same host are the same name to Caddy.
    expect_error(
        lambda: client.create_service(
            ServiceName="STEADY", SourceConfiguration=image_source(hello_image, auto=None)
        ),
        "InvalidRequestException",
        "steady.localhost",
    )
    assert snapshot(agent) == before


@pytest.mark.parametrize(
    ("src", "code", "hint"),
    [
        ({"kind": "FOO"}, "InvalidRequestException", "ImageRepositoryType"),
        ({"port": "-1"}, "InvalidRequestException", "Port"),
        ({"port": "70000"}, "InvalidRequestException", "Port"),
        ({"image": "127.0.0.1:{port}/no/such-image:v1"}, "InvalidRequestException", "not found"),
        ({"image": "127.0.0.1:1/hello:v1"}, "InvalidRequestException", "127.0.0.1:1"),
        ({"image": "Not An Image"}, "InvalidRequestException", "ImageIdentifier"),
    ],
)
def test_bad_sources(agent, steady, hello_image, registry, src, code, hint):
    before = snapshot(agent)
    client = agent.client(validate=False)
    image = src.get("image", hello_image).format(port=registry.host.split(":")[1])
    expect_error(
        lambda: client.create_service(
            ServiceName="badsource",
            SourceConfiguration=image_source(
                image, port=src.get("port", "8080"), kind=src.get("kind", "ECR"), auto=None
            ),
        ),
        code,
        hint,
    )
    expect_error(
        lambda: client.update_service(
            ServiceArn=steady,
            SourceConfiguration=image_source(
                image, port=src.get("port", "8080"), kind=src.get("kind", "ECR"), auto=None
            ),
        ),
        code,
        hint,
    )
    assert snapshot(agent) == before


def test_unknown_service_arn(agent, steady):
    before = snapshot(agent)
    client = agent.client()
    ghost = steady.rsplit("/", 1)[0] + "/" + "0" * 32
    for call in (
        lambda: client.describe_service(ServiceArn=ghost),
        lambda: client.pause_service(ServiceArn=ghost),
        lambda: client.delete_service(ServiceArn=ghost),
        lambda: client.start_deployment(ServiceArn=ghost),
        lambda: client.list_operations(ServiceArn=ghost),
    ):
        expect_error(call, "ResourceNotFoundException", ghost)
    assert snapshot(agent) == before


def test_state_rules(agent, steady):
    client = agent.client()
    expect_error(lambda: client.resume_service(ServiceArn=steady), "InvalidStateException")
    client.pause_service(ServiceArn=steady)
    wait_status(client, steady, "PAUSED")
    before = snapshot(agent)
    # StartDeployment's model lists no InvalidStateException: the edge answers the one it does.
    expect_error(
        lambda: client.start_deployment(ServiceArn=steady), "InvalidRequestException", "paused"
    )
    expect_error(
        lambda: client.update_service(
            ServiceArn=steady, HealthCheckConfiguration={"Protocol": "TCP"}
        ),
        "InvalidStateException",
        "paused",
    )
    assert snapshot(agent) == before
    client.resume_service(ServiceArn=steady)
    wait_status(client, steady, "RUNNING")


def test_quota(agent, steady, hello_image):
    client = agent.client()
    arns = []
    for i in range(2):
        arns.append(
            client.create_service(
                ServiceName=f"quota-{i}", SourceConfiguration=image_source(hello_image, auto=None)
            )["Service"]["ServiceArn"]
        )
    for arn in arns:
        wait_status(client, arn, "RUNNING")
    before = snapshot(agent)
    expect_error(
        lambda: client.create_service(
            ServiceName="quota-x", SourceConfiguration=image_source(hello_image, auto=None)
        ),
        "ServiceQuotaExceededException",
        "3",
    )
    assert snapshot(agent) == before
    for arn in arns:
        client.delete_service(ServiceArn=arn)
        wait_status(client, arn, "DELETED")


def test_unsigned_and_badly_signed(agent, steady):
    before = snapshot(agent)
    body = json.dumps({"ServiceArn": steady})
    headers = {
        "X-Amz-Target": "AppRunner.DeleteService",
        "Content-Type": "application/x-amz-json-1.0",
    }
    unsigned = httpx.post(agent.endpoint, content=body, headers=headers)
    assert unsigned.status_code == 403
    assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"

    bad = agent.client(secret="not-the-secret")
    expect_error(lambda: bad.delete_service(ServiceArn=steady), "InvalidSignatureException")

    stranger = agent.client(key_id="SLWYUNKNOWNKEY000000")
    expect_error(lambda: stranger.delete_service(ServiceArn=steady), "UnrecognizedClientException")
    assert snapshot(agent) == before


def test_unsupported_operation(agent, steady):
    client = agent.client()
    expect_error(
        lambda: client.create_service(
            ServiceName="kms-service",
            SourceConfiguration=image_source("127.0.0.1:5000/x:y", auto=None),
            EncryptionConfiguration={"KmsKey": "arn:aws:kms:us-east-1:000000000000:key/x"},
        ),
        "InvalidRequestException",
        "EncryptionConfiguration",
    )
