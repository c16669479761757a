"""The edge of the agent: limits before authentication (body caps, JSON depth, buckets of
failed authentications and deliveries), request ids, the client's address behind Caddy."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from slipway.api.app import error_response
from slipway.api.edge import REQUEST_ID_HEADER, Edge, client_address, request_id
from slipway.config import load_settings
from slipway.edgelimits import (
    EdgeLimits,
    TokenBuckets,
    check_json_depth,
    json_depth,
)
from slipway.errors import InvalidRequest, SlipwayError
from slipway.routing.ingress import CLIENT_HEADER

# -- limits --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_request_bytes", 0),
        ("max_hook_bytes", -1),
        ("max_json_depth", 0),
        ("auth_failure_burst", 0),
        ("auth_failures_per_minute", 0),
        ("hook_burst", -5),
        ("hooks_per_minute", -1),
    ],
)
def test_nonsense_limits_are_refused_naming_the_setting(setting: str, value: int) -> None:
    limits = load_settings(environ={f"SLIPWAY_{setting.upper()}": str(value)}).edge_limits
    with pytest.raises(InvalidRequest, match=setting):
        limits.check()


def test_default_limits_hold() -> None:
    EdgeLimits().check()
    assert load_settings(environ={}).edge_limits == EdgeLimits()


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"{}", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "[[[[{{{{"}', 1),  # brackets in strings do not count
        (b'{"a": "\\"[[[["}', 1),  # nor after an escaped quote
        (b"[[]][[[]]]", 3),
        (b"12", 0),
    ],
)
def test_json_depth_counts_brackets_outside_strings(body: bytes, depth: int) -> None:
    assert json_depth(body, 100) == depth


def test_json_depth_stops_counting_past_the_limit() -> None:
    assert json_depth(b"[" * 1_000_000, 32) == 33
    with pytest.raises(InvalidRequest, match="max_json_depth"):
        check_json_depth(b"[" * 33 + b"]" * 33, 32)
    check_json_depth(b"[" * 32 + b"]" * 32, 32)


def test_token_bucket_spends_refills_and_forgets_least_recent() -> None:
    now = [0.0]
    buckets = TokenBuckets(3, 60.0, max_keys=2, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(4)] == [True, True, True, False]
    assert not buckets.allows("a")
    assert buckets.allows("b")  # another address has its own
    now[0] = 1.0  # one a second
    assert buckets.take("a") and not buckets.take("a")
    buckets.take("b")
    buckets.take("c")  # three keys: "a", the least recently used, is forgotten
    assert buckets.allows("a") and buckets.take("a") and buckets.take("a")


# -- the middleware --------------------------------------------------------------------


SMALL = EdgeLimits(max_request_bytes=1000, max_hook_bytes=5000)


def edge_app() -> tuple[FastAPI, dict[str, Any]]:
    app = FastAPI()
    app.add_middleware(Edge, limits=SMALL)
    seen: dict[str, Any] = {}

    @app.exception_handler(SlipwayError)
    async def render(_: Request, exc: SlipwayError) -> Any:
        return error_response(exc)

    @app.post("/")
    async def api(request: Request) -> JSONResponse:
        body = await request.body()
        seen["id"] = request_id(request)
        seen["client"] = client_address(request.scope)
        return JSONResponse({"size": len(body)})

    @app.post("/hooks/github")
    async def hook(request: Request) -> JSONResponse:
        return JSONResponse({"size": len(await request.body())})

    @app.post("/fails")
    async def fails() -> JSONResponse:
        raise InvalidRequest("no")

    return app, seen


def test_every_answer_carries_a_request_id_the_audit_can_read() -> None:
    app, seen = edge_app()
    client = TestClient(app)
    ok = client.post("/", content=b"{}")
    assert str(uuid.UUID(ok.headers[REQUEST_ID_HEADER])) == seen["id"]
    failed = client.post("/fails")
    assert failed.status_code == 400 and uuid.UUID(failed.headers[REQUEST_ID_HEADER])
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and REQUEST_ID_HEADER in missing.headers
    assert ok.headers[REQUEST_ID_HEADER] != failed.headers[REQUEST_ID_HEADER]


def test_declared_body_over_the_cap_is_refused_before_the_app_reads_it() -> None:
    app, seen = edge_app()
    client = TestClient(app)
    refused = client.post("/", content=b"x" * 1001)
    assert refused.status_code == 413
    assert refused.json()["__type"] == "RequestEntityTooLargeException"
    assert "max_request_bytes" in refused.json()["Message"]
    assert refused.headers["connection"] == "close" and REQUEST_ID_HEADER in refused.headers
    assert seen == {}  # the endpoint never ran
    # webhooks have their own cap
    assert client.post("/hooks/github", content=b"x" * 4000).json() == {"size": 4000}
    assert client.post("/hooks/github", content=b"x" * 5001).status_code == 413


def _chunked(app: Any, path: str, chunks: int, size: int) -> tuple[int, int]:
    """POST ``chunks`` chunks without a Content-Length; (status, chunks the app pulled)."""
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"transfer-encoding", b"chunked")],
        "client": ("192.0.2.7", 5000),
        "server": ("127.0.0.1", 8780),
        "scheme": "http",
    }
    pulled = 0
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * size, "more_body": pulled < chunks}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    anyio.run(app, scope, receive, send)
    return statuses[0], pulled


def test_chunked_body_is_counted_and_cut_at_the_cap() -> None:
    app, seen = edge_app()
    status, pulled = _chunked(app, "/", chunks=1000, size=100)
    assert status == 413
    assert pulled == 11  # 1100 bytes: one chunk past the cap of 1000, not all 1000 chunks
    status, pulled = _chunked(app, "/", chunks=10, size=100)
    assert status == 200 and pulled == 10


def test_client_address_is_caddys_word_only_from_loopback() -> None:
    header = (CLIENT_HEADER.lower().encode(), b"203.0.113.9")

    def scope(peer: str, *headers: tuple[bytes, bytes]) -> dict[str, Any]:
        return {"client": (peer, 1234), "headers": list(headers)}

    assert client_address(scope("127.0.0.1", header)) == "203.0.113.9"
    assert client_address(scope("::1", header)) == "203.0.113.9"
    assert client_address(scope("198.51.100.1", header)) == "198.51.100.1"  # not trusted
    assert client_address(scope("127.0.0.1")) == "127.0.0.1"
    bad = (CLIENT_HEADER.lower().encode(), b"not-an-address")
    assert client_address(scope("127.0.0.1", bad)) == "127.0.0.1"
