"""The HTTP edge: App Runner's JSON 1.0 protocol on ``POST /``, slipway's own signed
endpoints under ``/slipway/v1``, and ``/healthz``. Errors are rendered here only."""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ..domains.rules import ASK_PATH
from ..edgelimits import EdgeLimits, Throttled, TokenBuckets, check_json_depth
from ..errors import AccessDenied, AuthError, InvalidRequest, SlipwayError
from ..observe.applogs import instance_stream
from ..policies import AccessRequest
from ..sources.github_app import AppCredentials
from . import authz, shapes, sigv4
from .calls import Calls
from .console import mount_console
from .console.web import Console
from .edge import Edge, client_address
from .hooks import webhook_router
from .idle import idle_router
from .keys import keys_router
from .nodes import nodes_router
from .observe import (
    audit_router,
    audited_call,
    events_router,
    metrics_router,
    notify_router,
    record_request,
)
from .secrets import secrets_router
from .traffic import traffic_router
from .validate import operation_names
from .wire_errors import UnknownOperation, for_operation

if TYPE_CHECKING:
    from ..agent import Agent

log = logging.getLogger("slipway.api")
AMZ_JSON = "application/x-amz-json-1.0"
TARGET_PREFIX = "AppRunner."


def error_response(exc: SlipwayError) -> Response:
    body = {"__type": exc.code, "Message": exc.message}
    headers = {"x-amzn-ErrorType": exc.code}
    if exc.status == 413:  # the rest of the body is unread: don't drain it, close
        headers["Connection"] = "close"
    return Response(json.dumps(body), status_code=exc.status, media_type=AMZ_JSON, headers=headers)


def _decode(body: bytes, max_depth: int) -> Any:
    if not body.strip():
        return {}
    check_json_depth(body, max_depth)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc


def create_app(agent: Agent) -> FastAPI:
    app = FastAPI(title="slipway", docs_url=None, redoc_url=None, openapi_url=None)
    supported = set(operation_names())
    calls = Calls(agent)
    limits: EdgeLimits = agent.settings.edge_limits  # checked by the Agent at its start
    app.add_middleware(Edge, limits=limits)
    failures = TokenBuckets(limits.auth_failure_burst, limits.auth_failures_per_minute)

    def tags_of(arn: str) -> dict[str, str]:
        return agent.store.get_tags(arn)

    async def check_access(caller: sigv4.Caller, wanted: Callable[[], AccessRequest]) -> None:
        """The one check of what a caller may do (``access.Access.authorize``); ``wanted``
        reads the resource's tags from the store, so it runs in a thread too."""
        await run_in_threadpool(lambda: agent.access.authorize(caller.access_key_id, wanted()))

    def verify(request: Request, body: bytes) -> sigv4.Caller:
        caller = sigv4.verify(
            request.method,
            request.scope.get("raw_path", b"/").decode("latin-1"),
            request.url.query,
            request.headers,
            body,
            agent.access.lookup_secret,
            region=agent.settings.region,
        )
        agent.access.note_used(caller.access_key_id)
        return caller

    async def authenticate(request: Request, body: bytes) -> sigv4.Caller:
        """Who signed the request (SigV4 for the agent's region; an address whose failures
        used up its bucket is throttled before any signature work, and each failure spends
        a token); and, on slipway's own routes, whether its principal may make the call
        (``authz.ROUTES``). App Runner calls are authorized once their parameters are read
        (``app_runner``). A refusal is audited here."""
        template = getattr(request.scope.get("route"), "path", "")
        route = authz.ROUTES.get((request.method, template))
        if template == "/":
            operation = request.headers.get("x-amz-target", "").removeprefix(TARGET_PREFIX)
        else:
            operation = route.action if route else f"{request.method} {template}"
        address = client_address(request.scope)
        caller = None
        try:
            if not failures.allows(address):
                raise Throttled("Rate exceeded: too many failed authentications from this address")
            try:
                caller = await run_in_threadpool(verify, request, body)
            except AuthError:
                failures.take(address)
                raise
            if template != "/":
                if route is None:  # a signed route nobody named an action for
                    raise AccessDenied(f"{operation} is not allowed to anyone")
                await check_access(
                    caller,
                    lambda: authz.route_request(
                        route,
                        request.path_params,
                        request.query_params,
                        body,
                        region=agent.settings.region,
                        account=agent.settings.account_id,
                        tags_of=tags_of,
                    ),
                )
        except SlipwayError as exc:  # recorded without parameters: nobody to trust
            await record_request(agent.audit, request, caller, operation, None, exc.code)
            raise
        return caller

    @app.exception_handler(SlipwayError)
    async def _render(_: Request, exc: SlipwayError) -> Response:
        if exc.status >= 500:
            log.error("internal error: %s", exc.message, exc_info=exc)
        return error_response(exc)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        problems = agent.logs.problems() + agent.jobs.problems() + agent.operations.problems()
        jobs = {
            name: {
                "runs": h.runs,
                "last_success": h.last_success,
                "last_error": h.last_error if h.failing else None,
                "cpu_seconds": round(h.cpu_seconds, 3),
            }
            for name, h in sorted(agent.jobs.health().items())
        }
        return {"status": "degraded" if problems else "ok", "problems": problems, "jobs": jobs}

    @app.post("/")
    async def app_runner(request: Request) -> Response:
        body = await request.body()
        target = request.headers.get("x-amz-target", "")
        operation = target.removeprefix(TARGET_PREFIX)
        caller = await authenticate(request, body)
        async with audited_call(agent.audit, request, caller, operation) as call:
            if not target.startswith(TARGET_PREFIX) or operation not in supported:
                raise UnknownOperation(f"Unknown operation {target or '(no X-Amz-Target)'}")
            try:
                call.params = params = _decode(body, limits.max_json_depth)
                result = await answer(operation, params, caller)
            except SlipwayError as exc:  # as the model lets this operation answer it
                wire = for_operation(operation, exc)
                if wire is exc:
                    raise
                raise wire from exc
            return Response(json.dumps(result), media_type=AMZ_JSON)

    async def answer(operation: str, params: Any, caller: sigv4.Caller) -> dict[str, Any]:
        """One App Runner call, its parameters read (``calls.Calls.app_runner``)."""
        return await run_in_threadpool(calls.app_runner, caller.access_key_id, operation, params)

    async def signed_call(request: Request, operation: str, work: Any) -> Any:
        """A signed slipway call with a JSON object body: ``work(params)`` runs in a
        thread, and one audit row records it (parameters redacted), whatever it answers."""
        body = await request.body()
        caller = await authenticate(request, body)
        async with audited_call(agent.audit, request, caller, operation) as call:
            call.params = params = _decode(body, limits.max_json_depth)
            if not isinstance(params, dict):
                raise InvalidRequest(f"{operation} expects a JSON object")
            return await run_in_threadpool(work, params)

    @app.put("/slipway/v1/registries/{host}")
    async def registry_login(host: str, request: Request) -> JSONResponse:
        await signed_call(
            request,
            "slipway:RegistryLogin",
            lambda p: agent.credentials.login(
                host, str(p.get("Username", "")), str(p.get("Password", ""))
            ),
        )
        return JSONResponse({"Host": host})

    @app.post("/slipway/v1/connections/{name}/authorize")
    async def authorize_connection(name: str, request: Request) -> JSONResponse:
        """The handshake CreateConnection leaves pending: a token, or a GitHub App."""

        def authorize(params: dict[str, Any]) -> dict[str, Any]:
            app_creds = None
            if params.get("AppId"):
                try:
                    app_creds = AppCredentials(
                        app_id=int(params["AppId"]),
                        private_key=str(params.get("PrivateKey", "")),
                        installation_id=int(params["InstallationId"])
                        if params.get("InstallationId")
                        else None,
                    )
                except (TypeError, ValueError) as exc:
                    raise InvalidRequest(
                        f"AppId and InstallationId must be numbers: {exc}"
                    ) from exc
            return agent.connections.authorize(
                name, token=params.get("Token") or None, app=app_creds
            )

        row = await signed_call(request, "slipway:AuthorizeConnection", authorize)
        return JSONResponse(
            {
                "Connection": shapes.connection(row),
                "Account": row["account"],
                "WebhookUrl": f"{agent.settings.webhook_base}/hooks/github",
                "WebhookSecret": row["webhook_secret"],
            }
        )

    @app.get("/slipway/v1/revisions")
    async def revisions(request: Request) -> JSONResponse:
        """The running revision, the newest one the source offers, and those deployed."""
        await authenticate(request, b"")
        service = await run_in_threadpool(
            agent.services.service, request.query_params.get("ServiceArn", "")
        )
        rows = await run_in_threadpool(agent.services.rollback_candidates, service)
        return JSONResponse(
            {
                "RunningRevision": service.live_revision,
                "NewestRevision": service.latest_revision,
                "NewestRef": service.latest_ref,
                "Revisions": [
                    {
                        "Revision": r.revision,
                        "Image": r.image,
                        "OperationId": r.operation_id,
                        "DeployedAt": r.created_at,
                        "Commit": {
                            k: (r.detail or {}).get("detail", {}).get(k)
                            for k in ("author", "message")
                        },
                    }
                    for r in rows
                ],
            }
        )

    @app.post("/slipway/v1/rollback")
    async def rollback(request: Request) -> JSONResponse:
        """Redeploy an earlier revision from its kept image (a START_DEPLOYMENT)."""
        op_id = await signed_call(
            request,
            "slipway:Rollback",
            lambda p: agent.services.rollback(
                str(p.get("ServiceArn", "")), p.get("Revision") or None
            ),
        )
        return JSONResponse({"OperationId": op_id})

    @app.get("/slipway/v1/logs")
    async def read_logs(request: Request) -> JSONResponse:
        """One stream from a byte offset (for --follow), or every stream merged by time."""
        await authenticate(request, b"")
        query = request.query_params
        service = await run_in_threadpool(agent.services.service, query.get("ServiceArn", ""))
        stream = query.get("Stream")
        if query.get("Instance"):
            stream = instance_stream(query["Instance"])
        group = query.get("Group", "service")
        if group not in ("service", "application"):
            raise InvalidRequest("Group must be service or application")
        try:
            offset = int(query.get("Offset", "0"))
            since = float(query.get("Since", "0"))
            limit = int(query.get("Limit", "10000"))
        except ValueError as exc:
            raise InvalidRequest(f"Offset, Since and Limit must be numbers: {exc}") from exc
        if stream:
            events, offset = await run_in_threadpool(
                agent.logs.read, service.id, stream, offset=offset
            )
        else:
            events = await run_in_threadpool(
                functools.partial(
                    agent.logs.read_merged,
                    service.id,
                    agent.logs.streams(service.id, group),
                    since,
                    limit=limit,
                    newest=query.get("Newest") == "true",
                )
            )
        return JSONResponse(
            {
                "Events": [
                    {"Timestamp": e.timestamp, "Stream": e.stream, "Message": e.message}
                    for e in events
                ],
                "NextOffset": offset,
                "Streams": agent.logs.streams(service.id),
            }
        )

    @app.get(ASK_PATH)
    async def domain_ask(request: Request, domain: str = "") -> Response:
        """Caddy's on-demand TLS asks before it gets a certificate for a host under a
        wildcard domain. Unsigned (Caddy can't sign), so it answers only on loopback,
        where Caddy asks from, and tells only whether a name may get a certificate now
        (``Domains.allows``: served, resolving here, within its wildcard's budget)."""
        if not _from_loopback(request):
            return Response(status_code=403)
        allowed = await run_in_threadpool(agent.domains.allows, domain)
        return Response(status_code=200 if allowed else 403)

    app.include_router(webhook_router(agent.tracker, limits, failures, pulls=agent.previews))
    app.include_router(keys_router(agent.access, authenticate, signed_call))
    app.include_router(metrics_router(agent.metrics, agent.metrics_history, authenticate))
    app.include_router(idle_router(agent.idler, authenticate))
    app.include_router(
        notify_router(agent.notifier, authenticate, agent.audit, limits.max_json_depth)
    )
    app.include_router(audit_router(agent.audit, authenticate))
    app.include_router(secrets_router(agent.secrets, authenticate, signed_call))
    app.include_router(traffic_router(agent.splits, authenticate, signed_call))
    app.include_router(nodes_router(agent.nodes, authenticate))
    app.include_router(
        events_router(agent.events, authenticate, lambda arn: agent.services.service(arn).id)
    )
    mount_console(app, Console(agent, calls), failures, authenticate)
    return app


def _from_loopback(request: Request) -> bool:
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:  # not an address (a test client's name)
        return False
