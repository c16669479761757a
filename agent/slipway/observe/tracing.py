"""OpenTelemetry tracing of services whose observability configuration enables it: the
standard ``OTEL_*`` environment of their instances, and the router's span of each of
their requests, as OTLP/HTTP JSON, to one collector (``trace_endpoint``).

Why the router's spans come from Caddy's access log and not from Caddy itself: Caddy's
``tracing`` handler (``http.handlers.tracing``, OTLP over gRPC configured by the
``OTEL_EXPORTER_OTLP_*`` environment of Caddy's process) is not in Debian's Caddy 2.6.2
(``caddy list-modules`` has no ``http.handlers.tracing``), the Caddy slipway runs. The
access log has what a server span needs (start, duration, method, URI, status, the
client's ``traceparent``), and the agent reads it already for the metrics. A traced
service's requests therefore always cross Caddy (the HAProxy data plane leaves its
host to Caddy: ``routing/haproxyconfig.py``).

App Runner's only vendor, ``AWSXRAY``, is mapped to that collector: point it at an
OpenTelemetry Collector (or the AWS Distro for OpenTelemetry, which forwards to X-Ray).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidRequest

SCOPE = "slipway.router"
TRACE_PARENT = "Traceparent"  # W3C Trace Context headers, in Caddy's log's case
TRACE_RESPONSE = "Traceresponse"
SPAN_KIND_SERVER = 2
STATUS_ERROR = 2
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


@dataclass(frozen=True)
class TraceSettings:
    """Where traces go: ``endpoint`` is the collector's OTLP/HTTP base URL (the agent
    posts to ``<endpoint>/v1/traces``); ``instance_endpoint`` is the same collector as
    instances reach it (empty: ``endpoint``; instances run in containers, where a
    loopback address is their own). Router spans are exported every ``interval``
    seconds, at most ``batch_spans`` to a request."""

    endpoint: str = "http://127.0.0.1:4318"
    instance_endpoint: str = ""
    interval: float = 2.0
    batch_spans: int = 512
    name_quota: int = 10
    revision_quota: int = 10

    def check(self) -> None:
        """Refuse settings that cannot work, naming the setting."""
        for setting, url in (
            ("trace_endpoint", self.endpoint),
            ("trace_instance_endpoint", self.instance_endpoint),
        ):
            parts = urlsplit(url)
            if url and (parts.scheme not in ("http", "https") or not parts.hostname):
                raise InvalidRequest(
                    f"{setting} must be an http:// or https:// URL of an OTLP/HTTP"
                    f" collector, not {url!r}"
                )
        if not self.endpoint:
            raise InvalidRequest("trace_endpoint must name the OTLP/HTTP collector")
        if not 0 < self.interval <= 3600:
            raise InvalidRequest(
                f"trace_export_interval must be between 0 and 3600 seconds, not {self.interval}"
            )
        if not 1 <= self.batch_spans <= 100_000:
            raise InvalidRequest(
                f"trace_batch_spans must be between 1 and 100000, not {self.batch_spans}"
            )
        for setting, value in (
            ("observability_name_quota", self.name_quota),
            ("observability_revision_quota", self.revision_quota),
        ):
            if not 1 <= value <= 10_000:
                raise InvalidRequest(f"{setting} must be between 1 and 10000, not {value}")

    @property
    def traces_url(self) -> str:
        return self.endpoint.rstrip("/") + "/v1/traces"


def resource_attributes(service_name: str, service_arn: str, region: str, account: str) -> dict:
    """What every span of a service says about where it ran, the router's and the
    instances' alike, so a trace's parts group under one service."""
    return {
        "service.name": service_name,
        "cloud.platform": "aws_app_runner",
        "cloud.region": region,
        "cloud.account.id": account,
        "slipway.service.arn": service_arn,
    }


def instance_env(resource: Mapping[str, str], endpoint: str) -> dict[str, str]:
    """The standard OpenTelemetry SDK environment for a traced service's instances:
    traces over OTLP/HTTP to ``endpoint``, metrics and logs not exported (App Runner's
    observability configuration covers tracing only). The service's own variables,
    set after these, win."""
    others = ",".join(f"{k}={v}" for k, v in resource.items() if k != "service.name")
    return {
        "OTEL_SERVICE_NAME": resource["service.name"],
        "OTEL_RESOURCE_ATTRIBUTES": others,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PROPAGATORS": "tracecontext,baggage",
    }


def _attributes(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            out.append({"key": key, "value": {"stringValue": str(value)}})
        else:
            out.append({"key": key, "value": {"intValue": str(value)}})
    return out


def _header(headers: Mapping[str, Any], name: str) -> str:
    """One request header as Caddy logs it (a list of values, canonical case)."""
    values = headers.get(name) or []
    return values[0] if isinstance(values, list) and values else ""


def _context(value: str) -> tuple[str, str] | None:
    """(trace id, span id) of a ``traceparent``-formed value, None unless valid."""
    found = _TRACEPARENT.match(value.strip().lower())
    if not found or {"0"} in (set(found.group(1)), set(found.group(2))):
        return None
    return found.group(1), found.group(2)


def router_span(entry: Mapping[str, Any], span_name: str) -> dict[str, Any] | None:
    """The server span of one Caddy access-log entry (Caddy 2.6's JSON), or None when
    the entry lacks what a span needs. Its ids are those Caddy returned in
    ``traceresponse`` (the instance got them as its parent); a request that carried a
    W3C ``traceparent`` is a child of the caller's span."""
    try:
        request = entry["request"]
        end = float(entry["ts"])
        duration = float(entry["duration"])
        status = int(entry["status"])
        method, uri = str(request["method"]), str(request["uri"])
    except (KeyError, TypeError, ValueError):
        return None
    headers = request.get("headers") or {}
    span: dict[str, Any] = {}
    parent = _context(_header(headers, TRACE_PARENT))
    own = _context(_header(entry.get("resp_headers") or {}, TRACE_RESPONSE))
    if own:  # the ids Caddy gave the request (routing/tracecontext.py)
        span["traceId"], span["spanId"] = own
    else:
        span["traceId"], span["spanId"] = secrets.token_hex(16), secrets.token_hex(8)
    if parent and (not own or parent[0] == own[0]):
        span["traceId"], span["parentSpanId"] = parent
    end_ns = int(end * 1e9)
    attributes: dict[str, Any] = {
        "http.method": method,
        "http.target": uri,
        "http.host": str(request.get("host", "")),
        "http.flavor": str(request.get("proto", "")).removeprefix("HTTP/"),
        "http.status_code": status,
        "net.peer.ip": str(request.get("remote_ip", "")),
    }
    agent = _header(headers, "User-Agent")
    if agent:
        attributes["http.user_agent"] = agent
    span.update(
        {
            "name": span_name,
            "kind": SPAN_KIND_SERVER,
            "startTimeUnixNano": str(end_ns - int(duration * 1e9)),
            "endTimeUnixNano": str(end_ns),
            "attributes": _attributes(attributes),
        }
    )
    if status >= 500:
        span["status"] = {"code": STATUS_ERROR}
    return span


def export_request(spans_by_service: Mapping[str, tuple[dict, list[dict]]]) -> dict[str, Any]:
    """The body of one OTLP/HTTP JSON export: one resource per service (its resource
    attributes, its spans)."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource)},
                "scopeSpans": [{"scope": {"name": SCOPE}, "spans": spans}],
            }
            for resource, spans in spans_by_service.values()
            if spans
        ]
    }
