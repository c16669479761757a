"""The HTTP side of observability: ``/metrics`` and the signed ``/slipway/v1`` endpoints
for metrics, events, the audit trail and notification targets, and the audit rows the
HTTP edge writes for each call. The parts they serve (``observe/``) know nothing of HTTP.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..edgelimits import EdgeLimits, check_json_depth
from ..errors import InvalidRequest, SlipwayError
from ..observe.audit import AuditTrail
from ..observe.events import EventBus
from ..observe.history import MetricsHistory
from ..observe.metrics import PROMETHEUS_CONTENT_TYPE, Metrics
from ..observe.notify import Notifier
from .edge import client_address, request_id

Authenticate = Callable[[Request, bytes], Awaitable[Any]]


# -- audit rows of HTTP calls ---------------------------------------------------------


def request_origin(request: Request) -> tuple[str | None, str | None]:
    """The caller's address and User-Agent, as the audit trail records them."""
    return client_address(request.scope) or None, request.headers.get("user-agent")


@dataclass
class AuditedCall:
    params: Any = None  # the request's parameters, once decoded (redacted when stored)


async def record_request(
    trail: AuditTrail,
    request: Request,
    caller: Any,
    operation: str,
    params: dict[str, Any] | None,
    outcome: str,
) -> int:
    """``AuditTrail.record`` for a call the HTTP edge answered: the address and User-Agent
    come from ``request``, the access key from ``caller`` (sigv4.Caller, or None when
    authentication failed)."""
    source_ip, user_agent = request_origin(request)
    key_id = getattr(caller, "access_key_id", None)
    return await run_in_threadpool(
        trail.record,
        None,
        key_id,
        source_ip,
        user_agent,
        operation,
        params,
        outcome,
        request_id(request),
    )


@contextlib.asynccontextmanager
async def audited_call(
    trail: AuditTrail, request: Request, caller: Any, operation: str
) -> AsyncIterator[AuditedCall]:
    """One row for the call run inside, whatever it answers: OK, or the code of the
    SlipwayError it raised; with the parameters the call set once it read them."""
    entry = AuditedCall()
    outcome = "OK"
    try:
        yield entry
    except SlipwayError as exc:
        outcome = exc.code
        raise
    except Exception:  # answered by the edge as an internal error
        outcome = SlipwayError.code
        raise
    finally:
        params = entry.params if isinstance(entry.params, dict) else None
        await record_request(trail, request, caller, operation, params, outcome)


def cursor_query(query: Mapping[str, str]) -> tuple[float | None, int | None, int]:
    """``Since``, ``AfterId`` and ``Limit`` of a cursor-paged listing (events, audit)."""
    try:
        since = float(query["Since"]) if query.get("Since") else None
        after_id = int(query["AfterId"]) if query.get("AfterId") else None
        limit = int(query.get("Limit") or 100)
    except ValueError as exc:
        raise InvalidRequest(f"Since, AfterId and Limit must be numbers: {exc}") from exc
    return since, after_id, limit


# -- routers ------------------------------------------------------------------------


# -- HTTP ---------------------------------------------------------------------------

_ROW_API = {
    "minute": "Minute",
    "requests": "Requests",
    "2xx": "2xxStatusResponses",
    "4xx": "4xxStatusResponses",
    "5xx": "5xxStatusResponses",
    "p50": "RequestLatencyP50",
    "p99": "RequestLatencyP99",
    "active_instances": "ActiveInstances",
    "cpu": "CPUUtilization",
    "memory": "MemoryUtilization",
}


def metrics_router(
    metrics: Metrics, history: MetricsHistory, authenticate: Authenticate
) -> APIRouter:
    """``GET /metrics`` for Prometheus, unauthenticated as scrapers expect (it names
    services and their traffic, nothing more: keep the agent's listener private or put
    the scrape behind a proxy); ``GET /slipway/v1/metrics?Service=NAME&Minutes=5``, SigV4
    signed like every /slipway/v1 endpoint, for the CLI's table: a row per minute up to
    an hour, per 5 minutes up to a day, per hour beyond (``PeriodSeconds``)."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(metrics.prometheus(), media_type=PROMETHEUS_CONTENT_TYPE)

    @router.get("/slipway/v1/metrics")
    async def recent(request: Request) -> JSONResponse:
        await authenticate(request, b"")
        query = request.query_params
        service = query.get("Service", "")
        if not service:
            raise InvalidRequest("Service is required")
        try:
            minutes = int(query.get("Minutes", "5"))
        except ValueError as exc:
            raise InvalidRequest(f"Minutes must be a whole number: {exc}") from exc
        step, rows = await run_in_threadpool(history.window, service, minutes)
        return JSONResponse(
            {
                "Service": service,
                "PeriodSeconds": step,
                "Rows": [{_ROW_API[k]: v for k, v in row.items()} for row in rows],
            }
        )

    return router


def events_router(
    bus: EventBus,
    authenticate: Authenticate,
    service_id_for: Callable[[str], str],
) -> APIRouter:
    """``GET /slipway/v1/events?ServiceArn=&Since=&AfterId=&Limit=`` for ``slipway
    events [NAME] [--follow]``: follow by passing back ``NextAfterId``."""
    router = APIRouter()

    @router.get("/slipway/v1/events")
    async def list_events(request: Request) -> JSONResponse:
        await authenticate(request, b"")
        query = request.query_params
        since, after_id, limit = cursor_query(query)
        arn = query.get("ServiceArn")
        service_id = await run_in_threadpool(service_id_for, arn) if arn else None
        rows = await run_in_threadpool(bus.list, service_id, since, after_id, limit)
        return JSONResponse(
            {
                "Events": [{"Id": r["id"], "Event": r["body"]} for r in rows],
                "NextAfterId": rows[-1]["id"] if rows else after_id,
            }
        )

    return router


def audit_router(trail: AuditTrail, authenticate: Authenticate) -> APIRouter:
    """``GET /slipway/v1/audit?Since=&AfterId=&Limit=``, SigV4-verified first."""
    router = APIRouter()

    @router.get("/slipway/v1/audit")
    async def read_audit(request: Request) -> JSONResponse:
        await authenticate(request, b"")
        since, after_id, limit = cursor_query(request.query_params)
        rows = await run_in_threadpool(trail.list, since, after_id, limit)
        return JSONResponse(
            {
                "Events": [
                    {
                        "Id": r["id"],
                        "Time": r["time"],
                        "AccessKeyId": r["access_key_id"],
                        "SourceIp": r["source_ip"],
                        "UserAgent": r["user_agent"],
                        "Operation": r["operation"],
                        "Params": r["params"],
                        "Outcome": r["outcome"],
                        "RequestId": r.get("request_id"),
                    }
                    for r in rows
                ],
                "NextAfterId": rows[-1]["id"] if rows else after_id,
            }
        )

    return router


def notify_router(
    notifier: Notifier,
    authenticate: Authenticate,
    trail: AuditTrail | None = None,
    max_json_depth: int = EdgeLimits.max_json_depth,
) -> APIRouter:
    """``/slipway/v1/notify``: POST {Url, Pattern, Secret?, Format?}, GET, DELETE /{id}.
    Every request is SigV4-verified by ``authenticate`` before anything else; with a
    ``trail``, changes are audited (``slipway:AddNotifyTarget``, ``...RemoveNotifyTarget``,
    the secret hidden)."""
    router = APIRouter()

    async def audited(
        request: Request, caller: Any, operation: str, params: Any, call: Callable[[], Any]
    ) -> Any:
        if trail is None:
            return await run_in_threadpool(call)
        async with audited_call(trail, request, caller, operation) as entry:
            entry.params = params
            return await run_in_threadpool(call)

    def to_api(target: dict[str, Any]) -> dict[str, Any]:
        out = {
            "Id": target["id"],
            "Url": target["url"],
            "Pattern": target["pattern"],
            "Format": target["format"],
            "Source": target["source"],
            "CreatedAt": target["created_at"],
        }
        if "secret" in target:
            out["Secret"] = target["secret"]
        return out

    @router.post("/slipway/v1/notify")
    async def add(request: Request) -> JSONResponse:
        body = await request.body()
        caller = await authenticate(request, body)
        check_json_depth(body, max_json_depth)
        error: Exception | None = None
        try:
            params = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError) as exc:
            params, error = None, exc

        def add_target() -> dict[str, Any]:
            if error is not None:
                raise InvalidRequest(f"request body is not valid JSON: {error}") from error
            if not isinstance(params, dict):
                raise InvalidRequest("expected a JSON object with Url and Pattern")
            if params.get("Pattern") is None:
                raise InvalidRequest("Pattern: required, an EventBridge event pattern")
            return notifier.add_target(
                params.get("Url"),
                params["Pattern"],
                secret=params.get("Secret"),
                format=params.get("Format") or "json",
            )

        target = await audited(request, caller, "slipway:AddNotifyTarget", params, add_target)
        return JSONResponse({"Target": to_api(target)})

    @router.get("/slipway/v1/notify")
    async def list_targets(request: Request) -> JSONResponse:
        await authenticate(request, b"")
        targets = await run_in_threadpool(notifier.list_targets)
        return JSONResponse({"Targets": [to_api(t) for t in targets]})

    @router.delete("/slipway/v1/notify/{target_id}")
    async def remove(target_id: str, request: Request) -> JSONResponse:
        caller = await authenticate(request, await request.body())
        await audited(
            request,
            caller,
            "slipway:RemoveNotifyTarget",
            {"Id": target_id},
            lambda: notifier.remove_target(target_id),
        )
        return JSONResponse({"Id": target_id})

    return router
