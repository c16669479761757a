"""Tracing without a collector: the OTEL_* environment, a router span from a Caddy
access-log entry, the export of traced hosts' lines over a fake transport, the
settings' checks, the HAProxy map leaving traced hosts to Caddy, and the observability
configuration rules with the worker's fakes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from test_services_worker import Env

from slipway.errors import InvalidRequest, QuotaExceeded, ResourceNotFound
from slipway.observe.traceexport import RouterSpans, TraceExportError
from slipway.observe.tracing import (
    TraceSettings,
    export_request,
    instance_env,
    resource_attributes,
    router_span,
)
from slipway.routing.caddyconfig import Route, TlsSettings, build_config
from slipway.routing.haproxyconfig import SERVER_OPTIONS, Server, plan
from slipway.routing.tracecontext import SCRATCH

RESOURCE = resource_attributes("web", "arn:aws:apprunner:r:1:service/web/x", "r", "1")


def entry(host: str = "web.localhost:8080", status: int = 200, **headers: str) -> dict:
    """A Caddy 2.6 access-log entry, as its JSON encoder writes it."""
    return {
        "level": "info",
        "ts": 1700000000.5,
        "logger": "http.log.access.slipway-access",
        "msg": "handled request",
        "request": {
            "remote_ip": "127.0.0.1",
            "remote_port": "5555",
            "proto": "HTTP/1.1",
            "method": "GET",
            "host": host,
            "uri": "/a?b=1",
            "headers": {k: [v] for k, v in headers.items()},
        },
        "duration": 0.25,
        "size": 5,
        "status": status,
    }


def test_instance_env_is_the_standard_sdk_environment():
    env = instance_env(RESOURCE, "http://collector:4318")
    assert env["OTEL_SERVICE_NAME"] == "web"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector:4318"
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    attributes = dict(pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
    assert attributes["cloud.platform"] == "aws_app_runner"
    assert attributes["slipway.service.arn"] == RESOURCE["slipway.service.arn"]
    assert "service.name" not in attributes  # OTEL_SERVICE_NAME says it


def test_router_span_times_attributes_and_a_new_trace():
    span = router_span(entry(**{"User-Agent": "curl/8"}), "web")
    assert span["name"] == "web" and span["kind"] == 2
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
    assert "parentSpanId" not in span
    assert span["endTimeUnixNano"] == str(1700000000500000000)
    assert int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"]) == 250_000_000
    attributes = {a["key"]: a["value"] for a in span["attributes"]}
    assert attributes["http.status_code"] == {"intValue": "200"}
    assert attributes["http.target"] == {"stringValue": "/a?b=1"}
    assert attributes["http.user_agent"] == {"stringValue": "curl/8"}
    assert "status" not in span
    assert router_span(entry(status=502), "web")["status"] == {"code": 2}


def test_router_span_takes_the_ids_caddy_returned():
    trace, caddys, parent = "a" * 32, "c" * 16, "b" * 16
    logged = entry(Traceparent=f"00-{trace}-{parent}-01")
    logged["resp_headers"] = {"Traceresponse": [f"00-{trace}-{caddys}-01"]}
    span = router_span(logged, "web")
    assert (span["traceId"], span["spanId"], span["parentSpanId"]) == (trace, caddys, parent)
    alone = entry()
    alone["resp_headers"] = {"Traceresponse": [f"00-{trace}-{caddys}-01"]}
    assert "parentSpanId" not in router_span(alone, "web")


def test_only_traced_routes_get_a_trace_context_in_caddy():
    config = build_config(
        [Route("t.localhost", ("127.77.0.1:8080",), traced=True), Route("p.localhost", ("x:1",))],
        [],
        admin_listen="unix//a",
        http_port=80,
        tls=TlsSettings(),
        route_dns=None,
        access_log=None,
        access_log_roll_mb=1,
        access_log_keep=1,
    )
    traced, plain = config["apps"]["http"]["servers"]["slipway"]["routes"][1::-1]
    assert [h["handler"] for h in traced["handle"]] == ["subroute", "reverse_proxy"]
    assert traced["handle"][1]["headers"] == {"request": {"delete": [SCRATCH]}}
    assert [h["handler"] for h in plain["handle"]] == ["reverse_proxy"]
    assert "headers" not in plain["handle"][0]


def test_router_span_joins_the_callers_trace_only_with_a_valid_traceparent():
    trace, parent = "a" * 32, "b" * 16
    span = router_span(entry(Traceparent=f"00-{trace}-{parent}-01"), "web")
    assert (span["traceId"], span["parentSpanId"]) == (trace, parent)
    for bad in ("00-nothex-01", f"00-{'0' * 32}-{parent}-01", f"00-{trace}-{'0' * 16}-01"):
        assert "parentSpanId" not in router_span(entry(Traceparent=bad), "web")
    assert router_span({"ts": 1, "request": {}}, "web") is None


def test_export_request_groups_spans_by_service_resource():
    body = export_request({"web": (RESOURCE, [{"spanId": "1"}]), "idle": ({}, [])})
    (group,) = body["resourceSpans"]
    names = {a["key"]: a["value"] for a in group["resource"]["attributes"]}
    assert names["service.name"] == {"stringValue": "web"}
    assert group["scopeSpans"][0]["spans"] == [{"spanId": "1"}]


class Collector:
    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict] = []
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/traces"
        assert request.headers["content-type"] == "application/json"
        self.bodies.append(json.loads(request.content))
        return httpx.Response(self.status, json={})

    def spans(self) -> list[dict]:
        return [
            span
            for body in self.bodies
            for group in body["resourceSpans"]
            for scope in group["scopeSpans"]
            for span in scope["spans"]
        ]


def exporter(tmp_path: Path, collector: Collector, traced: dict, **settings) -> RouterSpans:
    log = tmp_path / "access.log"
    log.write_bytes(b"")
    return RouterSpans(
        log,
        TraceSettings(endpoint="http://collector:4318", **settings),
        lambda: traced,
        transport=httpx.MockTransport(collector),
    )


def write(tmp_path: Path, *entries: dict) -> None:
    with (tmp_path / "access.log").open("a") as fh:
        for item in entries:
            fh.write(json.dumps(item, separators=(",", ":")) + "\n")  # as Caddy writes


def test_only_traced_hosts_lines_become_spans_in_batches(tmp_path):
    collector = Collector()
    spans = exporter(tmp_path, collector, {"web.localhost": RESOURCE}, batch_spans=2)
    write(
        tmp_path,
        entry(),
        entry(host="other.localhost"),
        entry(host="web.localhost.evil"),  # starts like a traced host: not it
        entry(),
        entry(host="WEB.localhost"),
    )
    with (tmp_path / "access.log").open("a") as fh:
        fh.write('not json but "host":"web.localhost\n')
    assert spans.export_once() == 3
    assert [len(b["resourceSpans"][0]["scopeSpans"][0]["spans"]) for b in collector.bodies] == [
        2,
        1,
    ]
    assert spans.export_once() == 0  # nothing new
    assert spans.exported == 3


def test_lines_read_while_nothing_is_traced_are_never_exported(tmp_path):
    collector = Collector()
    traced: dict = {}
    spans = RouterSpans(
        tmp_path / "access.log",
        TraceSettings(endpoint="http://collector:4318"),
        lambda: traced,
        transport=httpx.MockTransport(collector),
    )
    write(tmp_path, entry())
    assert spans.export_once() == 0
    traced["web.localhost"] = RESOURCE
    write(tmp_path, entry())
    assert spans.export_once() == 1 and len(collector.spans()) == 1


def test_a_refusing_collector_fails_the_pass_by_name(tmp_path):
    spans = exporter(tmp_path, Collector(status=503), {"web.localhost": RESOURCE})
    write(tmp_path, entry())
    with pytest.raises(TraceExportError, match="answered 503"):
        spans.export_once()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"endpoint": "collector:4318"}, "trace_endpoint"),
        ({"endpoint": ""}, "trace_endpoint"),
        ({"instance_endpoint": "ftp://x"}, "trace_instance_endpoint"),
        ({"interval": 0}, "trace_export_interval"),
        ({"batch_spans": 0}, "trace_batch_spans"),
        ({"name_quota": 0}, "observability_name_quota"),
        ({"revision_quota": -1}, "observability_revision_quota"),
    ],
)
def test_nonsense_trace_settings_are_refused_by_name(settings, named):
    with pytest.raises(InvalidRequest, match=named):
        TraceSettings(**settings).check()


def test_haproxy_leaves_traced_hosts_to_caddy():
    routes = [
        Route("traced.localhost", ("127.77.0.1:8080",), traced=True),
        Route("plain.localhost", ("127.77.0.2:8080",)),
    ]
    mapped = {"traced.localhost": "s0"}  # traced since: its entry and servers go
    servers = [Server("s0", "127.77.0.1_8080", "127.77.0.1:8080", True)]
    assert plan(routes, mapped, servers, map_file=Path("/m"), backends=2) == [
        f"add server s1/127.77.0.2_8080 127.77.0.2:8080 {SERVER_OPTIONS}",
        "enable server s1/127.77.0.2_8080",
        "add map /m plain.localhost s1",
        "del map /m traced.localhost",
        "disable server s0/127.77.0.1_8080",
        "del server s0/127.77.0.1_8080",
    ]


# -- observability configurations and services, with the worker's fakes -----------------


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path, observability_revision_quota=2)


def test_a_traced_service_gets_otel_env_and_a_traced_route(env):
    configs = env.services.observability_configs
    row = configs.create(
        {"ObservabilityConfigurationName": "xray", "TraceConfiguration": {"Vendor": "AWSXRAY"}}
    )
    name_only = row["arn"].rsplit("/", 2)[0]
    service = env.create(
        ObservabilityConfiguration={
            "ObservabilityEnabled": True,
            "ObservabilityConfigurationArn": name_only,
        }
    )
    assert service.spec.observability_arn == row["arn"] and service.spec.tracing
    env.drain()
    (inst,) = env.backend.list_instances()
    assert env.backend.specs[inst.id].env["OTEL_SERVICE_NAME"] == "hello"
    assert env.router.routes[0].traced
    with pytest.raises(InvalidRequest, match="used by service hello"):
        configs.delete(row["arn"])
    # A revision without TraceConfiguration is associated, and traces nothing.
    quiet = configs.create({"ObservabilityConfigurationName": "quiet"})
    env.services.update_service(
        {
            "ServiceArn": service.arn,
            "ObservabilityConfiguration": {
                "ObservabilityEnabled": True,
                "ObservabilityConfigurationArn": quiet["arn"],
            },
        }
    )
    with pytest.raises(InvalidRequest, match="used by service hello"):
        configs.delete(quiet["arn"])  # the update queued will use it
    env.drain()
    (inst,) = env.backend.list_instances()
    assert "OTEL_SERVICE_NAME" not in env.backend.specs[inst.id].env
    assert not env.router.routes[0].traced
    assert configs.delete(row["arn"])["status"] == "INACTIVE"


def test_revisions_quotas_and_reserved_name(env):
    configs = env.services.observability_configs
    first = configs.create({"ObservabilityConfigurationName": "xray"})
    second = configs.create({"ObservabilityConfigurationName": "xray"})
    assert (first["revision"], second["revision"]) == (1, 2)
    with pytest.raises(QuotaExceeded, match="2 active revisions"):
        configs.create({"ObservabilityConfigurationName": "xray"})
    with pytest.raises(InvalidRequest, match="reserved"):
        configs.create({"ObservabilityConfigurationName": "DefaultConfiguration"})
    with pytest.raises(InvalidRequest, match="Key is required"):
        configs.create({"ObservabilityConfigurationName": "tagged", "Tags": [{"Value": "v"}]})
    assert [r["name"] for r in configs.rows()] == ["xray", "xray"]
    configs.delete(second["arn"])
    assert configs.create({"ObservabilityConfigurationName": "xray"})["revision"] == 3
    with pytest.raises(ResourceNotFound):
        configs.get(second["arn"])
    assert configs.row(second["arn"])["status"] == "INACTIVE"


def test_a_service_naming_an_unknown_configuration_is_refused_before_anything_is_stored(env):
    with pytest.raises(InvalidRequest, match="ObservabilityConfigurationArn"):
        env.create(
            ObservabilityConfiguration={
                "ObservabilityEnabled": True,
                "ObservabilityConfigurationArn": "arn:aws:apprunner:us-east-1:000000000000:"
                "observabilityconfiguration/nope",
            }
        )
    with pytest.raises(InvalidRequest, match="required when ObservabilityEnabled"):
        env.create(ObservabilityConfiguration={"ObservabilityEnabled": True})
    assert env.store.list_services() == []
