"""``/slipway/v1/traffic`` and ``/slipway/v1/revision-tags``: slipway's own signed
endpoints for a service's traffic split between revisions and its revision tags
(``operations/splits.py``). Each change answers once it is routed, with the split as
``GET`` shows it.

    GET    /slipway/v1/traffic?ServiceArn=A                   split, tags, rollout policy
    PUT    /slipway/v1/traffic        {ServiceArn, To: ["REV=PERCENT", ...] | ToLatest: true}
    PUT    /slipway/v1/revision-tags  {ServiceArn, Revision, Tag}   tag (or move a tag)
    DELETE /slipway/v1/revision-tags  {ServiceArn, Tag}             untag
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import InvalidRequest
from ..operations.splits import Splits

Authenticate = Callable[[Request, bytes], Awaitable[Any]]
# app.py's signed_call: authenticate, decode a JSON object, run the work, audit the call.
SignedCall = Callable[[Request, str, Callable[[dict[str, Any]], Any]], Awaitable[Any]]
UPDATE = "slipway:UpdateTraffic"


def _text(params: dict[str, Any], member: str) -> str:
    value = params.get(member)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{member}: required, a string")
    return value


def _set_traffic(splits: Splits, params: dict[str, Any]) -> dict[str, Any]:
    to, latest = params.get("To"), params.get("ToLatest") is True
    if latest == (to is not None):
        raise InvalidRequest("give either To (a list of REVISION=PERCENT) or ToLatest: true")
    if to is not None and (not isinstance(to, list) or not all(isinstance(e, str) for e in to)):
        raise InvalidRequest("To: a list of REVISION=PERCENT strings")
    return splits.set_traffic(_text(params, "ServiceArn"), None if latest else to)


def traffic_router(
    splits: Splits, authenticate: Authenticate, signed_call: SignedCall
) -> APIRouter:
    router = APIRouter()

    @router.get("/slipway/v1/traffic")
    async def describe(request: Request) -> JSONResponse:
        await authenticate(request, b"")
        arn = request.query_params.get("ServiceArn", "")
        return JSONResponse(await run_in_threadpool(splits.describe, arn))

    @router.put("/slipway/v1/traffic")
    async def put(request: Request) -> JSONResponse:
        answer = await signed_call(request, UPDATE, lambda p: _set_traffic(splits, p))
        return JSONResponse(answer)

    @router.put("/slipway/v1/revision-tags")
    async def tag(request: Request) -> JSONResponse:
        def work(params: dict[str, Any]) -> dict[str, Any]:
            return splits.tag(
                _text(params, "ServiceArn"), _text(params, "Revision"), _text(params, "Tag")
            )

        return JSONResponse(await signed_call(request, UPDATE, work))

    @router.delete("/slipway/v1/revision-tags")
    async def untag(request: Request) -> JSONResponse:
        def work(params: dict[str, Any]) -> dict[str, Any]:
            return splits.untag(_text(params, "ServiceArn"), _text(params, "Tag"))

        return JSONResponse(await signed_call(request, UPDATE, work))

    return router
