"""``GET /slipway/v1/idle?Service=NAME``: whether a service is scaled to zero (``slipway
services describe`` shows it), beside ActiveInstances in its metrics. App Runner has no
idle status, so DescribeService keeps saying RUNNING."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import InvalidRequest

Authenticate = Callable[[Request, bytes], Awaitable[Any]]


class IdleState(Protocol):
    def state(self, name: str) -> dict[str, Any]: ...


def idle_router(idler: IdleState, authenticate: Authenticate) -> APIRouter:
    """``idler.state(name)``: the service's idle state (``operations/wake.py``)."""
    router = APIRouter()

    @router.get("/slipway/v1/idle")
    async def idle(request: Request) -> JSONResponse:
        await authenticate(request, b"")
        name = request.query_params.get("Service", "")
        if not name:
            raise InvalidRequest("Service is required")
        found = await run_in_threadpool(idler.state, name)
        return JSONResponse(
            {
                "Service": name,
                "Idle": found["idle_since"] is not None,
                "IdleSince": found["idle_since"],
                "IdleTimeout": found["timeout"],
            }
        )

    return router
