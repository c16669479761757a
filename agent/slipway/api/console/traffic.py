"""The service page's forms for where requests go: on the Revisions tab, split them
between revisions (``slipway traffic NAME --to REV=PCT`` / ``--to-latest``) and give a
revision a URL of its own (``slipway revisions tag|untag``), the ``/slipway/v1/traffic``
and ``/slipway/v1/revision-tags`` routes' policy check and work; on the Settings tab,
preview environments on or off (``slipway previews enable|disable``: tags on the
service, through TagResource and UntagResource as the CLI sets them)."""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...console import forms, pages
from ...console.sessions import Session
from ...errors import InvalidRequest
from ...preview_rules import (
    TAG_PREVIEW_ENV,
    TAG_PREVIEWS,
    check_previewable,
    policy_text,
    preview_tag_keys,
)
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

    @router.post(f"{pages.PREFIX}/services/{{name}}/{{sid}}/previews")
    async def previews(name: str, sid: str, request: Request) -> Response:
        arn = console.service_arn(name, sid)

        async def change(session: Session, f: dict[str, str]) -> None:
            call = console.calls.app_runner
            if f.get("intent") == "disable":
                listed = call(session.key_id, "ListTagsForResource", {"ResourceArn": arn})
                keys = preview_tag_keys(t["Key"] for t in listed["Tags"])
                if not keys:
                    raise InvalidRequest(f"previews of {name} are not enabled")
                params: dict[str, Any] = {"ResourceArn": arn, "TagKeys": keys}
                await console.app_runner(request, session, "UntagResource", params)
                return
            env = forms.pairs(f.get("preview_env", ""), "previews")
            most = f.get("max", "").strip()
            if most and not most.isdigit():
                raise forms.FormError("previews", f"max={most!r} is not a number from 1")
            policy = policy_text(
                f.get("ttl", "").strip() or None,
                int(most) if most else None,
                f.get("forks") == "on",
                f.get("poll") == "on",
            )
            described = call(session.key_id, "DescribeService", {"ServiceArn": arn})
            check_previewable(name, described["Service"]["SourceConfiguration"])
            tags = [{"Key": TAG_PREVIEWS, "Value": policy}]
            tags += [{"Key": TAG_PREVIEW_ENV + k, "Value": v} for k, v in env.items()]
            params = {"ResourceArn": arn, "Tags": tags}
            await console.app_runner(request, session, "TagResource", params)

        done = redirect(f"{pages.PREFIX}/services/{name}/{sid}?tab=settings#previews")
        refused = again(console, request, name, sid, "settings", field="previews")
        return await console.submit(request, change, lambda _: done, refused)

    return router
