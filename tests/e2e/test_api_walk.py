"""The acceptance walk of issue 17: botocore's ``apprunner`` model, operation by
operation, through boto3 against a running agent.

First pass: every operation with a valid request, in an order that builds what the next
needs (a connection, an auto scaling configuration, a running service that is updated,
deployed, paused, resumed, tagged and given a custom domain, then everything deleted);
none may fail, and none may answer "not supported".

Second pass: each operation with an invalid request, and its answer must be an error
the model lists for that operation: a request the model itself refuses (members missing,
or a number below its minimum), built from the model; and each call of the first pass
again with its ARNs pointing at nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions
import botocore.session
import pytest
from botocore import xform_name

from testkit.harness import free_port, image_source, operations, wait_for, wait_status

pytestmark = pytest.mark.e2e

MODEL = botocore.session.get_session().get_service_model("apprunner")


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    # Custom domains are checked against a DNS server of the test's own (which knows no
    # name: they stay pending) and would get certificates from Caddy's own CA.
    return {
        "tls_issuer": "internal",
        "https_port": request.getfixturevalue("caddy_server").https_port,
        "dns_resolver": request.getfixturevalue("dns_server").address,
        "private_listen": f"127.0.0.1:{free_port()}",  # VPC ingress connections need one
    }


@pytest.fixture(scope="module")
def vpc_network(docker_client) -> Iterator[str]:
    """A user-defined network for the walk's VPC connector to name."""
    network = docker_client.networks.create(f"walk-{uuid.uuid4().hex[:8]}", driver="bridge")
    try:
        yield network.name
    finally:
        network.remove()


@dataclass
class Call:
    operation: str
    request: dict[str, Any]
    answer: dict[str, Any] | None = None
    error: dict[str, str] | None = None  # botocore's Error: Code, Message
    probe: bool = False  # sent to be refused


@dataclass
class Walk:
    client: Any
    image: str
    ids: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def send(self, operation: str, request: dict[str, Any], *, probe: bool = False) -> Call:
        call = Call(operation, request, probe=probe)
        try:
            call.answer = getattr(self.client, xform_name(operation))(**request)
        except botocore.exceptions.ClientError as exc:
            call.error = exc.response["Error"]
            assert exc.response["ResponseMetadata"]["RequestId"], "no x-amzn-RequestId"
        self.calls.append(call)
        return call


def _service_request(walk: Walk) -> dict[str, Any]:
    return {
        "ServiceName": f"walk-{uuid.uuid4().hex[:6]}",
        "SourceConfiguration": image_source(walk.image, RuntimeEnvironmentVariables={"A": "1"}),
        "HealthCheckConfiguration": {"Protocol": "HTTP", "Path": "/health", "Interval": 1},
        "AutoScalingConfigurationArn": walk.ids["asc"],
        "Tags": [{"Key": "team", "Value": "walk"}],
    }


def _default_asc(walk: Walk) -> str:
    listed = walk.client.list_auto_scaling_configurations(
        AutoScalingConfigurationName="DefaultConfiguration"
    )["AutoScalingConfigurationSummaryList"]
    return next(
        s["AutoScalingConfigurationArn"]
        for s in listed
        if s["AutoScalingConfigurationRevision"] == 1
    )


Request = Callable[[Walk], dict[str, Any]]
Then = Callable[[Walk, dict[str, Any]], None]


def _keep(name: str, *path: str) -> Then:
    def then(walk: Walk, answer: dict[str, Any]) -> None:
        value: Any = answer
        for key in path:
            value = value[key]
        walk.ids[name] = value

    return then


def _until(status: str) -> Then:
    """Wait for the service's status and for its operation to end (a paused service is
    PAUSED a moment before its PAUSE_SERVICE operation is done)."""

    def then(walk: Walk, _: dict[str, Any]) -> None:
        arn = walk.ids["service"]
        wait_status(walk.client, arn, status)
        wait_for(
            lambda: operations(walk.client, arn)[0]["Status"] == "SUCCEEDED",
            60,
            "the service's operation to end",
        )

    return then


def _arn(name: str) -> Request:
    member = {
        "service": "ServiceArn",
        "asc": "AutoScalingConfigurationArn",
        "connection": "ConnectionArn",
        "observability": "ObservabilityConfigurationArn",
        "connector": "VpcConnectorArn",
        "ingress": "VpcIngressConnectionArn",
    }[name]
    return lambda walk: {member: walk.ids[name]}


# The first pass, in order: (operation, its valid request, what to do with the answer).
STEPS: list[tuple[str, Request, Then | None]] = [
    (
        "CreateConnection",
        lambda w: {
            "ConnectionName": "walk-gh",
            "ProviderType": "GITHUB",
            "Tags": [{"Key": "k", "Value": "v"}],
        },
        _keep("connection", "Connection", "ConnectionArn"),
    ),
    ("ListConnections", lambda w: {}, None),
    (
        "CreateAutoScalingConfiguration",
        lambda w: {
            "AutoScalingConfigurationName": "walk",
            "MaxConcurrency": 50,
            "MinSize": 1,
            "MaxSize": 2,
        },
        _keep("asc", "AutoScalingConfiguration", "AutoScalingConfigurationArn"),
    ),
    ("DescribeAutoScalingConfiguration", _arn("asc"), None),
    ("ListAutoScalingConfigurations", lambda w: {"LatestOnly": True}, None),
    (
        "CreateObservabilityConfiguration",
        lambda w: {
            "ObservabilityConfigurationName": "walk",
            "TraceConfiguration": {"Vendor": "AWSXRAY"},
        },
        _keep("observability", "ObservabilityConfiguration", "ObservabilityConfigurationArn"),
    ),
    ("DescribeObservabilityConfiguration", _arn("observability"), None),
    ("ListObservabilityConfigurations", lambda w: {}, None),
    (
        "CreateVpcConnector",
        lambda w: {
            "VpcConnectorName": "walk",
            "Subnets": [w.ids["network"]],
            "SecurityGroups": ["sg-0123abcd"],
        },
        _keep("connector", "VpcConnector", "VpcConnectorArn"),
    ),
    ("DescribeVpcConnector", _arn("connector"), None),
    ("ListVpcConnectors", lambda w: {}, None),
    ("CreateService", _service_request, _keep("service", "Service", "ServiceArn")),
    ("DescribeService", _arn("service"), _until("RUNNING")),
    ("ListServices", lambda w: {}, None),
    ("ListOperations", _arn("service"), None),
    ("ListServicesForAutoScalingConfiguration", _arn("asc"), None),
    ("UpdateDefaultAutoScalingConfiguration", _arn("asc"), None),
    (
        "UpdateService",
        lambda w: {
            "ServiceArn": w.ids["service"],
            "SourceConfiguration": image_source(w.image, RuntimeEnvironmentVariables={"A": "2"}),
        },
        _until("RUNNING"),
    ),
    ("StartDeployment", _arn("service"), _until("RUNNING")),
    ("PauseService", _arn("service"), _until("PAUSED")),
    ("ResumeService", _arn("service"), _until("RUNNING")),
    (
        "TagResource",
        lambda w: {"ResourceArn": w.ids["service"], "Tags": [{"Key": "stage", "Value": "walk"}]},
        None,
    ),
    ("ListTagsForResource", lambda w: {"ResourceArn": w.ids["service"]}, None),
    ("UntagResource", lambda w: {"ResourceArn": w.ids["service"], "TagKeys": ["stage"]}, None),
    (
        "AssociateCustomDomain",
        lambda w: {
            "ServiceArn": w.ids["service"],
            "DomainName": "walk.example.test",
            "EnableWWWSubdomain": False,
        },
        None,
    ),
    ("DescribeCustomDomains", _arn("service"), None),
    (
        "DisassociateCustomDomain",
        lambda w: {"ServiceArn": w.ids["service"], "DomainName": "walk.example.test"},
        None,
    ),
    (
        "CreateVpcIngressConnection",
        lambda w: {
            "ServiceArn": w.ids["service"],
            "VpcIngressConnectionName": "walk",
            "IngressVpcConfiguration": {"VpcId": "vpc-walk", "VpcEndpointId": "vpce-walk"},
        },
        _keep("ingress", "VpcIngressConnection", "VpcIngressConnectionArn"),
    ),
    ("DescribeVpcIngressConnection", _arn("ingress"), None),
    ("ListVpcIngressConnections", lambda w: {"Filter": {"ServiceArn": w.ids["service"]}}, None),
    (
        "UpdateVpcIngressConnection",
        lambda w: {
            "VpcIngressConnectionArn": w.ids["ingress"],
            "IngressVpcConfiguration": {"VpcId": "vpc-walk", "VpcEndpointId": "vpce-walk2"},
        },
        None,
    ),
    ("DeleteVpcIngressConnection", _arn("ingress"), None),
    ("DeleteService", _arn("service"), _until("DELETED")),
    (
        "UpdateDefaultAutoScalingConfiguration",
        lambda w: {"AutoScalingConfigurationArn": _default_asc(w)},
        None,
    ),
    ("DeleteAutoScalingConfiguration", _arn("asc"), None),
    ("DeleteObservabilityConfiguration", _arn("observability"), None),
    ("DeleteVpcConnector", _arn("connector"), None),
    ("DeleteConnection", _arn("connection"), None),
]


@pytest.fixture(scope="module")
def walk(agent, push_hello, vpc_network: str) -> Iterator[Walk]:
    """The first pass, once for the module's tests: every call and its answer."""
    walk = Walk(agent.client(), push_hello())
    walk.ids["network"] = vpc_network
    for operation, request, then in STEPS:
        call = walk.send(operation, request(walk))
        if call.error is not None:
            break  # what follows builds on it; the test names the failure
        if then is not None:
            then(walk, call.answer)
        if operation == "PauseService":  # a deployment of a paused service: refused
            walk.send("StartDeployment", _arn("service")(walk), probe=True)
    yield walk


def test_the_walk_covers_the_whole_model() -> None:
    assert len(MODEL.operation_names) == 37
    assert {op for op, _, _ in STEPS} == set(MODEL.operation_names)


def test_every_operation_answers_a_valid_request(walk: Walk) -> None:
    failed = [(c.operation, c.error) for c in walk.calls if c.error is not None and not c.probe]
    assert failed == []
    answered = {c.operation for c in walk.calls if c.error is None}
    assert answered == set(MODEL.operation_names)
    for call in walk.calls:  # every answer carries the members the model gives it
        if call.answer is not None:
            metadata = call.answer["ResponseMetadata"]
            assert metadata["HTTPStatusCode"] == 200 and metadata["RequestId"]
            output = MODEL.operation_model(call.operation).output_shape
            assert set(output.required_members) <= set(call.answer), call.operation


def test_a_paused_service_refuses_a_deployment_with_an_error_the_model_lists(walk: Walk) -> None:
    [refused] = [c for c in walk.calls if c.probe]
    assert refused.error["Code"] == "InvalidRequestException"  # the model has no InvalidState here
    assert "paused" in refused.error["Message"]


def _malformed(operation: str) -> dict[str, Any]:
    """A request the model refuses: without its required members, or, when it has none,
    with a number below its minimum (MaxResults=0)."""
    shape = MODEL.operation_model(operation).input_shape
    if shape.required_members:
        return {}
    for name, member in shape.members.items():
        if member.type_name == "integer" and member.metadata.get("min", 0) > 0:
            return {name: member.metadata["min"] - 1}
    raise AssertionError(f"{operation}: no way to make it invalid from the model")


def _listed(operation: str) -> set[str]:
    return {e.name for e in MODEL.operation_model(operation).error_shapes}


@pytest.mark.parametrize("operation", MODEL.operation_names)
def test_a_malformed_request_gets_an_error_the_model_lists(agent, operation: str) -> None:
    walk = Walk(agent.client(validate=False), "")
    call = walk.send(operation, _malformed(operation))
    assert call.error is not None, f"{operation} accepted {call.request}"
    assert call.error["Code"] in _listed(operation), call.error
    assert "not supported" not in call.error["Message"]


def _gone(arn: str) -> str:
    """A well-formed ARN of nothing: the one given, its last character changed."""
    return arn[:-1] + ("0" if arn[-1] != "0" else "1")


def test_every_call_again_with_arns_of_nothing_gets_an_error_the_model_lists(
    agent, walk: Walk
) -> None:
    client = agent.client()
    wrong = []
    tried = set()
    for call in walk.calls:
        arns = {k: v for k, v in call.request.items() if k.endswith("Arn")}
        if call.error is not None or call.probe or not arns:
            continue
        again = Walk(client, "").send(
            call.operation, {**call.request, **{k: _gone(v) for k, v in arns.items()}}
        )
        tried.add(call.operation)
        if again.error is None or again.error["Code"] not in _listed(call.operation):
            wrong.append((call.operation, again.error or again.answer))
    assert wrong == []
    assert {"CreateService", "AssociateCustomDomain", "StartDeployment", "TagResource"} <= tried


def test_a_forged_next_token_is_an_invalid_request(agent, walk: Walk) -> None:
    client = agent.client()
    with pytest.raises(client.exceptions.InvalidRequestException, match="NextToken"):
        client.list_services(MaxResults=1, NextToken="eyJsIjoiTGlzdFNlcnZpY2VzIiwibyI6MH0.AAAA")


def test_pages_of_two_add_up_to_the_unpaged_list(agent, walk: Walk) -> None:
    client = agent.client()
    arn = walk.ids["service"]
    everything = client.list_operations(ServiceArn=arn)  # no MaxResults: all, one page
    assert "NextToken" not in everything and len(everything["OperationSummaryList"]) >= 5
    paged, pages, token = [], 0, None
    while pages == 0 or token:
        page = client.list_operations(
            ServiceArn=arn, MaxResults=2, **({"NextToken": token} if token else {})
        )
        paged += page["OperationSummaryList"]
        pages += 1
        token = page.get("NextToken")
    assert pages >= 3 and paged == everything["OperationSummaryList"]
