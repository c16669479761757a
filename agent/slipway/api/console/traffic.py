"""The service page's traffic forms (Revisions tab): split requests between revisions
(``slipway traffic NAME --to REV=PCT`` / ``--to-latest``) and give a revision a URL of
its own (``slipway revisions tag|untag``): the ``/slipway/v1/traffic`` and
``/slipway/v1/revision-tags`` routes' policy check and work, audited as they are."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...console import pages
from ...console.sessions import Session
from .services import Errors, again
from .web import Console, redirect

TAGS = "/slipway/v1/revision-tags"


def traffic_router(console: Console) -> APIRouter:
    router = APIRouter()
    splits = console.agent.splits

    @router.post(f"{pages.PREFIX}/services/{{name}}/{{sid}}/traffic")
    async def traffic(name: str, sid: str, request: Request) -> Response:
        arn = console.service_arn(name, sid)

        async def change(session: Session, f: dict[str, str]) -> None:
            intent = f.get("intent", "split")
            params: dict[str, Any] = {"ServiceArn": arn}
            if intent == "tag":
                params |= {"Revision": f.get("revision", ""), "Tag": f.get("tag", "")}
                route = ("PUT", TAGS)
                work = partial(splits.tag, arn, params["Revision"], params["Tag"])
            elif intent == "untag":
                params["Tag"] = f.get("tag", "")
                route, work = ("DELETE", TAGS), partial(splits.untag, arn, params["Tag"])
            else:
                to = None if intent == "latest" else f.get("to", "").split()
                params |= {"ToLatest": True} if to is None else {"To": to}
                route = ("PUT", "/slipway/v1/traffic")
                work = partial(splits.set_traffic, arn, to)
            await console.slipway(request, session, "slipway:UpdateTraffic", route, params, work)

        async def refused(session: Session, f: dict[str, str], errors: Errors) -> Response:
            field = "tag" if f.get("intent") in ("tag", "untag") else "to"
            answer = again(console, request, name, sid, "revisions", field=field, typed=True)
            return await answer(session, f, errors)

        done = redirect(f"{pages.PREFIX}/services/{name}/{sid}?tab=revisions#traffic")
        return await console.submit(request, change, lambda _: done, refused)

    return router
