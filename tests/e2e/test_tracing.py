"""Observability configurations and tracing through the real parts, with both data
planes: a request through the router to a service whose configuration traces becomes a
span, named after the service, at an OTLP/HTTP receiver of the test's own (the
collector of ``trace_endpoint``); its instances get the OTEL_* environment; the
configurations' lifecycle and bad input through boto3 and the AWS CLI."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from testkit.harness import (
    aws_json,
    expect_error,
    image_source,
    stop_haproxy,
    wait_for,
    wait_status,
)

PLANES = ["caddy", "haproxy"]  # caddy first: the HAProxy the second starts keeps http_port
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("agent", PLANES, indirect=True)]


class OtlpReceiver:
    """An OTLP/HTTP receiver of JSON exports (``POST /v1/traces``), keeping each span
    with its resource's attributes."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ok = self.path == "/v1/traces" and self.headers["Content-Type"] == (
                    "application/json"
                )
                if ok:
                    receiver.take(json.loads(body))
                self.send_response(200 if ok else 415)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, export: dict[str, Any]) -> None:
        with self.lock:
            for resource_spans in export["resourceSpans"]:
                resource = {
                    a["key"]: a["value"]["stringValue"]
                    for a in resource_spans["resource"]["attributes"]
                }
                for scope in resource_spans["scopeSpans"]:
                    for span in scope["spans"]:
                        self.spans.append({**span, "resource": resource})

    def of(self, service: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["resource"]["service.name"] == service]


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    found = OtlpReceiver()
    yield found
    found.server.shutdown()


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    url = request.getfixturevalue("receiver").url
    return {
        "data_plane": request.param,
        "haproxy_backends": 4,
        "trace_endpoint": url,
        "trace_instance_endpoint": "http://otel-collector.internal:4318",
        "trace_export_interval": 0.5,
        "observability_name_quota": 3,
        "observability_revision_quota": 2,
        "health_deadline": 120,  # a shared host under load may take long to start one
    }


@pytest.fixture(scope="module", autouse=True)
def reap_haproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Set up before ``agent``, so this ends after it: the HAProxy an agent started
    (it outlives the agent on purpose) is stopped."""
    yield
    stop_haproxy(tmp_path_factory.getbasetemp())


def plane(agent) -> str:
    return agent.env["SLIPWAY_DATA_PLANE"]


def partial_arn(agent, name: str) -> str:
    return f"arn:aws:apprunner:us-east-1:000000000000:observabilityconfiguration/{name}"


def traced_get(agent, service: str, path: str, traceparent: str) -> httpx.Response:
    return httpx.get(
        f"http://127.0.0.1:{agent.http_port}{path}",
        headers={"Host": f"{service}.localhost:{agent.http_port}", "traceparent": traceparent},
        timeout=10,
    )


def test_a_traced_service_request_becomes_a_span_naming_it(agent, receiver, hello_image):
    client = agent.client()
    suffix = plane(agent)
    config = client.create_observability_configuration(
        ObservabilityConfigurationName=f"xray-{suffix}",
        TraceConfiguration={"Vendor": "AWSXRAY"},
    )["ObservabilityConfiguration"]
    traced, plain = f"traced-{suffix}", f"plain-{suffix}"
    arn = client.create_service(
        ServiceName=traced,
        SourceConfiguration=image_source(hello_image, auto=None),
        # .../name: the latest revision, which the service then keeps.
        ObservabilityConfiguration={
            "ObservabilityEnabled": True,
            "ObservabilityConfigurationArn": partial_arn(agent, f"xray-{suffix}"),
        },
    )["Service"]["ServiceArn"]
    plain_arn = client.create_service(
        ServiceName=plain, SourceConfiguration=image_source(hello_image, auto=None)
    )["Service"]["ServiceArn"]
    service = wait_status(client, arn, "RUNNING")
    wait_status(client, plain_arn, "RUNNING")
    assert service["ObservabilityConfiguration"] == {
        "ObservabilityEnabled": True,
        "ObservabilityConfigurationArn": config["ObservabilityConfigurationArn"],
    }
    plain_service = client.describe_service(ServiceArn=plain_arn)["Service"]
    assert plain_service["ObservabilityConfiguration"] == {"ObservabilityEnabled": False}

    # The untraced service's request is logged first: once the traced one's span is in,
    # the exporter has passed the untraced one's line.
    assert agent.get(plain).status_code == 200
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    answer = traced_get(agent, traced, "/env/OTEL_SERVICE_NAME", f"00-{trace_id}-{parent_id}-01")
    assert answer.status_code == 200 and answer.text.strip() == traced  # the instance's own name
    spans = wait_for(lambda: receiver.of(traced), 30, f"a span of {traced}")
    (span,) = spans
    assert span["name"] == traced
    assert span["traceId"] == trace_id and span["parentSpanId"] == parent_id
    # Caddy gave the request the span's id, as the instance's parent and the answer's.
    assert answer.headers["traceresponse"] == f"00-{trace_id}-{span['spanId']}-01"
    assert span["kind"] == 2  # SERVER
    attributes = {a["key"]: a["value"] for a in span["attributes"]}
    assert attributes["http.status_code"] == {"intValue": "200"}
    assert attributes["http.target"] == {"stringValue": "/env/OTEL_SERVICE_NAME"}
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
    assert span["resource"]["slipway.service.arn"] == arn
    assert receiver.of(plain) == []
    assert "traceresponse" not in agent.get(plain).headers

    fresh = agent.get(traced, "/health")  # no traceparent: a trace of the router's own
    _, new_trace, new_span, _ = fresh.headers["traceresponse"].split("-")
    spans = wait_for(lambda: receiver.of(traced)[1:], 30, "a second span")
    assert (spans[0]["traceId"], spans[0]["spanId"]) == (new_trace, new_span)
    assert "parentSpanId" not in spans[0]

    env = {
        name: agent.get(traced, f"/env/{name}").text.strip()
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER")
    }
    assert env == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.internal:4318",
        "OTEL_TRACES_EXPORTER": "otlp",
    }
    assert agent.get(plain, "/env/OTEL_SERVICE_NAME").status_code == 404

    config_arn = config["ObservabilityConfigurationArn"]
    expect_error(
        lambda: client.delete_observability_configuration(ObservabilityConfigurationArn=config_arn),
        "InvalidRequestException",
        traced,
    )
    client.update_service(
        ServiceArn=arn, ObservabilityConfiguration={"ObservabilityEnabled": False}
    )
    wait_status(client, arn, "RUNNING")
    assert agent.get(traced, "/env/OTEL_SERVICE_NAME").status_code == 404
    deleted = client.delete_observability_configuration(ObservabilityConfigurationArn=config_arn)
    assert deleted["ObservabilityConfiguration"]["Status"] == "INACTIVE"
    for name in (arn, plain_arn):
        client.delete_service(ServiceArn=name)


def test_revisions_latest_tags_and_quotas(agent):
    client = agent.client()
    name = f"revs-{plane(agent)}"
    first = client.create_observability_configuration(
        ObservabilityConfigurationName=name,
        TraceConfiguration={"Vendor": "AWSXRAY"},
        Tags=[{"Key": "team", "Value": "web"}],
    )["ObservabilityConfiguration"]
    second = client.create_observability_configuration(ObservabilityConfigurationName=name)[
        "ObservabilityConfiguration"
    ]
    assert (first["ObservabilityConfigurationRevision"], first["Latest"]) == (1, True)
    assert (second["ObservabilityConfigurationRevision"], second["Latest"]) == (2, True)
    assert "TraceConfiguration" not in second  # none given: tracing not enabled
    assert second["ObservabilityConfigurationArn"].startswith(
        f"arn:aws:apprunner:us-east-1:000000000000:observabilityconfiguration/{name}/2/"
    )
    described = client.describe_observability_configuration(
        ObservabilityConfigurationArn=first["ObservabilityConfigurationArn"]
    )["ObservabilityConfiguration"]
    assert described["Latest"] is False and described["Status"] == "ACTIVE"
    assert described["TraceConfiguration"] == {"Vendor": "AWSXRAY"}
    by_name = client.describe_observability_configuration(
        ObservabilityConfigurationArn=partial_arn(agent, name)
    )["ObservabilityConfiguration"]
    assert by_name["ObservabilityConfigurationRevision"] == 2
    by_revision = client.describe_observability_configuration(
        ObservabilityConfigurationArn=partial_arn(agent, f"{name}/1")
    )["ObservabilityConfiguration"]
    assert by_revision["ObservabilityConfigurationArn"] == first["ObservabilityConfigurationArn"]

    listed = client.list_observability_configurations(ObservabilityConfigurationName=name)
    assert [s["ObservabilityConfigurationRevision"] for s in listed[SUMMARIES]] == [2]
    every = client.list_observability_configurations(
        ObservabilityConfigurationName=name, LatestOnly=False, MaxResults=1
    )
    assert [s["ObservabilityConfigurationRevision"] for s in every[SUMMARIES]] == [1]
    rest = client.list_observability_configurations(
        ObservabilityConfigurationName=name, LatestOnly=False, NextToken=every["NextToken"]
    )
    assert [s["ObservabilityConfigurationRevision"] for s in rest[SUMMARIES]] == [2]
    tags = client.list_tags_for_resource(ResourceArn=first["ObservabilityConfigurationArn"])
    assert tags["Tags"] == [{"Key": "team", "Value": "web"}]

    # Two revisions a name at most here (observability_revision_quota); nothing stored.
    expect_error(
        lambda: client.create_observability_configuration(ObservabilityConfigurationName=name),
        "ServiceQuotaExceededException",
        "2 active revisions",
    )
    deleted = client.delete_observability_configuration(
        ObservabilityConfigurationArn=partial_arn(agent, name)
    )["ObservabilityConfiguration"]
    assert deleted["ObservabilityConfigurationRevision"] == 2
    assert deleted["Status"] == "INACTIVE" and deleted["Latest"] is False
    assert deleted["DeletedAt"] >= deleted["CreatedAt"]
    again = client.describe_observability_configuration(
        ObservabilityConfigurationArn=partial_arn(agent, name)
    )["ObservabilityConfiguration"]
    assert again["ObservabilityConfigurationRevision"] == 1 and again["Latest"] is True
    third = client.create_observability_configuration(ObservabilityConfigurationName=name)
    assert third["ObservabilityConfiguration"]["ObservabilityConfigurationRevision"] == 3

    others = [f"other{i}-{plane(agent)}" for i in range(3)]
    in_use = {s["ObservabilityConfigurationName"] for s in listed_all(client)}
    free = 3 - len(in_use)  # observability_name_quota
    for other in others[:free]:
        client.create_observability_configuration(ObservabilityConfigurationName=other)
    before = listed_all(client)
    expect_error(
        lambda: client.create_observability_configuration(
            ObservabilityConfigurationName=others[-1]
        ),
        "ServiceQuotaExceededException",
        "3 observability configuration names",
    )
    assert listed_all(client) == before
    mine = {name, *others}
    for own in mine:
        for _ in range(3):  # every revision, latest first
            with contextlib.suppress(ClientError):
                client.delete_observability_configuration(
                    ObservabilityConfigurationArn=partial_arn(agent, own)
                )
    assert not mine & {s["ObservabilityConfigurationName"] for s in listed_all(client)}


SUMMARIES = "ObservabilityConfigurationSummaryList"


def listed_all(client) -> list[dict[str, Any]]:
    return client.list_observability_configurations(LatestOnly=False)[SUMMARIES]


@pytest.mark.parametrize(
    ("params", "code", "words"),
    [
        ({}, "InvalidRequestException", ["ObservabilityConfigurationName"]),
        ({"ObservabilityConfigurationName": "ab"}, "InvalidRequestException", ["Name"]),
        (
            {"ObservabilityConfigurationName": "has spaces"},
            "InvalidRequestException",
            ["ObservabilityConfigurationName"],
        ),
        (
            {"ObservabilityConfigurationName": "DefaultConfiguration"},
            "InvalidRequestException",
            ["reserved"],
        ),
        (
            {"ObservabilityConfigurationName": "novendor", "TraceConfiguration": {}},
            "InvalidRequestException",
            ["Vendor"],
        ),
        (
            {
                "ObservabilityConfigurationName": "jaeger",
                "TraceConfiguration": {"Vendor": "JAEGER"},
            },
            "InvalidRequestException",
            ["Vendor"],
        ),
        (
            {"ObservabilityConfigurationName": "badtags", "Tags": [{"Value": "x"}]},
            "InvalidRequestException",
            ["Key"],
        ),
    ],
)
def test_bad_configurations_store_nothing(agent, params, code, words):
    client = agent.client(validate=False)
    before = listed_all(client)
    expect_error(lambda: client.create_observability_configuration(**params), code, *words)
    assert listed_all(client) == before


def test_unknown_arns_and_bad_service_members_store_nothing(agent, hello_image):
    client = agent.client(validate=False)
    unknown = partial_arn(agent, "nosuchconfig/1/0123456789abcdef0123456789abcdef")
    for call in (
        client.describe_observability_configuration,
        client.delete_observability_configuration,
    ):
        expect_error(
            lambda call=call: call(ObservabilityConfigurationArn=unknown),
            "ResourceNotFoundException",
            "nosuchconfig",
        )
    expect_error(
        lambda: client.describe_observability_configuration(),
        "InvalidRequestException",
        "ObservabilityConfigurationArn",
    )
    services = client.list_services()["ServiceSummaryList"]
    for member, words in (
        ({"ObservabilityEnabled": True}, ["ObservabilityConfigurationArn", "required"]),
        (
            {"ObservabilityEnabled": True, "ObservabilityConfigurationArn": unknown},
            ["ObservabilityConfigurationArn", "not found"],
        ),
        ({"ObservabilityConfigurationArn": unknown}, ["ObservabilityEnabled"]),
    ):
        expect_error(
            lambda member=member: client.create_service(
                ServiceName=f"badobs-{plane(agent)}",
                SourceConfiguration=image_source(hello_image, auto=None),
                ObservabilityConfiguration=member,
            ),
            "InvalidRequestException",
            *words,
        )
    assert client.list_services()["ServiceSummaryList"] == services


def test_aws_cli_create_describe_delete(agent):
    name = f"cli-{plane(agent)}"

    def run(*args: str) -> dict[str, Any]:
        return aws_json(agent, *args)

    created = run(
        "create-observability-configuration",
        "--observability-configuration-name", name,
        "--trace-configuration", "Vendor=AWSXRAY",
    )["ObservabilityConfiguration"]  # fmt: skip
    arn = created["ObservabilityConfigurationArn"]
    assert created["TraceConfiguration"] == {"Vendor": "AWSXRAY"}
    described = run(
        "describe-observability-configuration", "--observability-configuration-arn", arn
    )
    assert described["ObservabilityConfiguration"]["ObservabilityConfigurationName"] == name
    listed = run("list-observability-configurations")[SUMMARIES]
    assert arn in [s["ObservabilityConfigurationArn"] for s in listed]
    deleted = run("delete-observability-configuration", "--observability-configuration-arn", arn)
    assert deleted["ObservabilityConfiguration"]["Status"] == "INACTIVE"
