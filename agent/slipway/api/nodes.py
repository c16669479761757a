"""``GET /slipway/v1/nodes``: the cluster view of ``backend: swarm`` (``slipway nodes``).
An agent that runs instances on one Docker Engine has no cluster to show and says so."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import InvalidRequest

Authenticate = Callable[[Request, bytes], Awaitable[Any]]


def nodes_router(
    nodes: Callable[[], list[dict[str, Any]]] | None, authenticate: Authenticate
) -> APIRouter:
    """``nodes`` lists the cluster's nodes; None when instances run on one host."""
    router = APIRouter()

    @router.get("/slipway/v1/nodes")
    async def list_nodes(request: Request) -> JSONResponse:
        await authenticate(request, b"")
        if nodes is None:
            raise InvalidRequest(
                "no cluster: this agent runs instances on one host (backend: docker)"
            )
        return JSONResponse({"Nodes": await run_in_threadpool(nodes)})

    return router
