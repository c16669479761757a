"""Server-sent events for what changes while a page is open (service statuses, an
operation's ``[AppRunner]``/``[Build]`` log as it is written, application logs in
follow mode) and the metrics a chart draws. Each stream reads the same calls and stores
the pages read, once a second, and stops when its session ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...console import pages
from ...console.sessions import COOKIE, SessionExpired
from ...errors import InvalidRequest, SlipwayError
from .web import Console

POLL_SECONDS = 1.0
TERMINAL = {"SUCCEEDED", "FAILED", "ROLLBACK_SUCCEEDED", "ROLLBACK_FAILED"}


def event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def live_router(console: Console) -> APIRouter:
    router = APIRouter()
    agent = console.agent
    p = pages.PREFIX

    def stream(request: Request, step: Callable[[], list[str] | None]) -> StreamingResponse:
        """Run ``step`` in a thread once a second and send what it returns, until it
        returns None (done), the browser leaves, or the session ends."""
        token = request.cookies.get(COOKIE)

        async def run() -> AsyncIterator[str]:
            while not await request.is_disconnected():
                try:
                    console.sessions.get(token)
                    out = await run_in_threadpool(step)
                except (SessionExpired, SlipwayError) as exc:
                    yield event("end", {"message": exc.message})
                    return
                if out is None:
                    yield event("end", {"message": ""})
                    return
                for chunk in out:
                    yield chunk
                await asyncio.sleep(POLL_SECONDS)

        return StreamingResponse(
            run(),
            media_type="text/event-stream",
            headers={**pages.HEADERS, "X-Accel-Buffering": "no"},
        )

    @router.get(f"{p}/live/services")
    async def statuses(request: Request) -> Response:
        """Each service's status, instances and revision as they change (list page)."""
        session = console.session(request)
        seen: dict[str, Any] = {}

        def step() -> list[str]:
            listed = console.calls.app_runner(session.key_id, "ListServices", {})
            records = {s.id: s for s in agent.store.list_services()}
            running: dict[str, int] = {}
            for inst in agent.backend.list_instances():
                if inst.state == "running":
                    running[inst.service_id] = running.get(inst.service_id, 0) + 1
            out = []
            for s in listed["ServiceSummaryList"]:
                record = records.get(s["ServiceId"])
                now = {
                    "id": s["ServiceId"],
                    "status": s["Status"],
                    "tone": pages.tone(s["Status"]),
                    "instances": running.get(s["ServiceId"], 0),
                    "revision": (record.live_revision or "")[:19] if record else "",
                    "updated": pages.iso(s.get("UpdatedAt")),
                }
                if seen.get(now["id"]) != now:
                    seen[now["id"]] = now
                    out.append(event("service", now))
            return out

        return stream(request, step)

    @router.get(f"{p}/live/services/{{name}}/{{sid}}/operations/{{op_id}}")
    async def operation_log(name: str, sid: str, op_id: str, request: Request) -> Response:
        """An operation's log line by line as it is written, its status as it changes,
        and its end once it is over and every line was sent."""
        session = console.session(request)
        arn = console.service_arn(name, sid)
        console.calls.authorize_route(
            session.key_id, "GET", "/slipway/v1/logs", {"ServiceArn": arn}
        )
        op = agent.store.get_operation(op_id)
        if op is None or op.service_id != sid:
            raise InvalidRequest(f"Operation {op_id} is not one of {name}'s")
        state: dict[str, Any] = {"offset": 0, "status": None, "done": False}

        def step() -> list[str] | None:
            if state["done"]:  # "done" was sent: the stream ends
                return None
            current = agent.store.get_operation(op_id)
            status = current.status if current else "FAILED"
            lines, state["offset"] = agent.logs.read(
                sid, f"deployment/{op_id}", offset=state["offset"]
            )
            out = [event("line", {"t": pages.iso(e.timestamp), "m": e.message}) for e in lines]
            if status != state["status"]:
                state["status"] = status
                out.append(event("status", {"status": status, "tone": pages.tone(status)}))
            if status in TERMINAL and not lines:
                svc = agent.store.service_by_arn(arn)
                out.append(event("done", {"service": svc.status if svc else "DELETED"}))
                state["done"] = True
            return out

        return stream(request, step)

    @router.get(f"{p}/live/services/{{name}}/{{sid}}/logs")
    async def app_logs(name: str, sid: str, request: Request) -> Response:
        """Application logs in follow mode: lines newer than the page's last one."""
        session = console.session(request)
        arn = console.service_arn(name, sid)
        console.calls.authorize_route(
            session.key_id, "GET", "/slipway/v1/logs", {"ServiceArn": arn}
        )
        try:
            since = float(request.query_params.get("since", "0"))
        except ValueError as exc:
            raise InvalidRequest(f"since must be a number: {exc}") from exc
        state = {"since": since}

        def step() -> list[str]:
            streams = agent.logs.streams(sid, "application")
            lines = agent.logs.read_merged(sid, streams, state["since"], limit=500)
            fresh = [e for e in lines if e.timestamp > state["since"]]
            if fresh:
                state["since"] = fresh[-1].timestamp
            return [
                event("line", {"t": pages.iso(e.timestamp), "s": e.stream, "m": e.message})
                for e in fresh
            ]

        return stream(request, step)

    @router.get(f"{p}/services/{{name}}/{{sid}}/metrics.json")
    async def metrics(name: str, sid: str, request: Request) -> Response:
        """The rows of the metrics history's window, as columns for uPlot."""
        session = console.session(request)
        try:
            minutes = int(request.query_params.get("minutes", "60"))
        except ValueError as exc:
            raise InvalidRequest(f"minutes must be a whole number: {exc}") from exc
        console.calls.authorize_route(
            session.key_id, "GET", "/slipway/v1/metrics", {"Service": name}
        )
        _, rows = await run_in_threadpool(agent.metrics_history.window, name, minutes)
        columns = {k: [r[k] for r in rows] for k in rows[0]} if rows else {}
        return JSONResponse(columns, headers=pages.HEADERS)

    return router
