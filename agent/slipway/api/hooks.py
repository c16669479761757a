"""The webhook endpoints: ``POST /hooks/github`` and ``POST /hooks/registry``.

The HTTP half of ``triggers/webhooks.py``: both endpoints read the body under a hard
cap (the ``Content-Length`` is checked up front, the stream is cut at ``max_body + 1``
bytes), hand headers and body to its handlers in a worker thread, and write exactly
one audit line per request, whatever the outcome. Per client address (``edge.client_address``),
deliveries are a token bucket, and failed signatures or tokens spend from the same bucket
as the API's failed authentications: past either, 429 before any work.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ..edgelimits import EdgeLimits, TokenBuckets
from ..triggers.pulls import PullSink
from ..triggers.webhooks import Reply, WebhookSink, failure, handle_github, handle_registry
from .edge import client_address, request_id

_DIGITS = re.compile(r"[0-9]+")


async def read_body(request: Request, max_body: int) -> bytes:
    """The whole body, or a ``Reply``: 413 past ``max_body`` (refused from the
    ``Content-Length`` alone, or cut off as soon as the stream passes the cap, so no
    more than ``max_body`` plus one chunk is ever held), 400 when it is cut short."""
    declared = request.headers.get("content-length")
    length: int | None = None
    if declared is not None:
        if not _DIGITS.fullmatch(declared.strip()):
            raise Reply(400, "bad_request", f"Content-Length {declared!r} is not a number")
        length = int(declared)
        if length > max_body:
            raise Reply(413, "too_large", f"body of {length} bytes is over {max_body} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise Reply(413, "too_large", f"body is over {max_body} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:
        raise Reply(400, "truncated", f"the client went away after {size} bytes") from exc
    if length is not None and size != length:
        raise Reply(400, "truncated", f"Content-Length says {length} bytes, {size} arrived")
    return b"".join(chunks)


def webhook_router(
    sink: WebhookSink,
    limits: EdgeLimits | None = None,
    failures: TokenBuckets | None = None,
    *,
    max_body: int | None = None,
    pulls: PullSink | None = None,
) -> APIRouter:
    """``POST /hooks/github`` and ``POST /hooks/registry`` over ``sink``; ``failures`` is
    the API's bucket of failed authentications (its own when not given); ``pulls`` takes
    ``pull_request`` deliveries (preview environments)."""
    router = APIRouter()
    limits = limits or EdgeLimits()
    max_body = limits.max_hook_bytes if max_body is None else max_body
    deliveries = TokenBuckets(limits.hook_burst, limits.hooks_per_minute)
    if failures is None:
        failures = TokenBuckets(limits.auth_failure_burst, limits.auth_failures_per_minute)

    async def answer(request: Request, hook: str, handle: Any, **known: str) -> JSONResponse:
        """Read, handle, audit once, answer: the one path every request takes."""
        source = client_address(request.scope)
        detail: dict[str, Any] = {"hook": hook, **known}
        if rid := request_id(request):
            detail["request_id"] = rid
        if forwarded := request.headers.get("x-forwarded-for"):
            detail["forwarded_for"] = forwarded
        try:
            if not failures.allows(source) or not deliveries.take(source):
                raise Reply(429, "throttled", "too many deliveries from this address")
            body = await read_body(request, max_body)
            work = functools.partial(handle, max_json_depth=limits.max_json_depth)
            reply = await run_in_threadpool(work, sink, request.headers, body, detail)
        except Reply as early:
            reply = early
        except Exception as exc:  # noqa: BLE001 - audited, then answered like other bugs
            reply = failure(exc)
        if reply.outcome == "unauthorized":
            failures.take(source)
        if reply.reason:
            detail["reason"] = reply.reason
        await run_in_threadpool(sink.audit, source, reply.outcome, detail)
        # Unread body left: close, or the server drains the rest of the upload first.
        close = {"Connection": "close"} if reply.status == 413 else None
        return JSONResponse(reply.content(), status_code=reply.status, headers=close)

    @router.post("/hooks/github")
    async def github(request: Request) -> JSONResponse:
        headers = request.headers
        return await answer(
            request,
            "github",
            functools.partial(handle_github, pulls=pulls),
            event=headers.get("x-github-event", ""),
            delivery=headers.get("x-github-delivery", ""),
        )

    @router.post("/hooks/registry")
    async def registry(request: Request) -> JSONResponse:
        return await answer(request, "registry", handle_registry)

    return router
