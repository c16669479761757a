"""The console's pages beside services: auto scaling configurations, connections (with
GitHub's authorization step), notification targets, keys, principals and their policies,
and the audit trail. Each change is
the API's own call, audited under the session's key."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...console import pages
from ...errors import SlipwayError
from ...policies import READY_MADE
from ...sources.github_app import AppCredentials
from .web import Console, redirect

AUDIT_ROWS = 500  # the newest rows the audit page filters


def admin_router(console: Console) -> APIRouter:
    router = APIRouter()
    agent = console.agent
    p = pages.PREFIX

    def listing(key_id: str, what: str) -> dict[str, Any]:
        call = console.calls.app_runner
        if what == "autoscaling":
            rows = call(key_id, "ListAutoScalingConfigurations", {})
            return {"configs": rows["AutoScalingConfigurationSummaryList"]}
        if what == "connections":
            return {"connections": call(key_id, "ListConnections", {})["ConnectionSummaryList"]}
        console.calls.authorize_route(key_id, "GET", "/slipway/v1/notify", {})
        return {"targets": agent.notifier.list_targets()}

    async def show(
        request: Request, what: str, extra: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        session = console.session(request)
        context = await run_in_threadpool(listing, session.key_id, what)
        context |= {"errors": {}, "form": {}, "shown": None, **(extra or {})}
        return console.page(request, f"{what}.html", context, session, status)

    for what in ("autoscaling", "connections", "notifications"):

        async def page(request: Request, what: str = what) -> Response:
            return await show(request, what)

        router.get(f"{p}/{what}")(page)

    @router.post(f"{p}/autoscaling")
    async def autoscaling(request: Request) -> Response:
        session = console.session(request)
        f = await console.form(request, session)
        try:
            if f.get("delete"):
                params: dict[str, Any] = {"AutoScalingConfigurationArn": f["delete"]}
                await console.app_runner(request, session, "DeleteAutoScalingConfiguration", params)
            else:
                params = {"AutoScalingConfigurationName": f.get("name", "")}
                for member, field in (
                    ("MinSize", "min"),
                    ("MaxSize", "max"),
                    ("MaxConcurrency", "concurrency"),
                ):
                    if f.get(field):
                        params[member] = _number(f[field])
                await console.app_runner(request, session, "CreateAutoScalingConfiguration", params)
        except SlipwayError as exc:
            return await show(
                request, "autoscaling", {"errors": {"": [exc.message]}, "form": f}, 400
            )
        return redirect(f"{p}/autoscaling")

    @router.post(f"{p}/connections")
    async def connections(request: Request) -> Response:
        session = console.session(request)
        f = await console.form(request, session)
        shown = None
        try:
            if f.get("delete"):
                await console.app_runner(
                    request, session, "DeleteConnection", {"ConnectionArn": f["delete"]}
                )
            elif f.get("authorize"):
                shown = await _authorize(console, request, session, f)
            else:
                params = {"ConnectionName": f.get("name", ""), "ProviderType": "GITHUB"}
                await console.app_runner(request, session, "CreateConnection", params)
        except (SlipwayError, ValueError) as exc:
            message = getattr(exc, "message", str(exc))
            return await show(request, "connections", {"errors": {"": [message]}, "form": f}, 400)
        if shown:
            return await show(request, "connections", {"shown": shown})
        return redirect(f"{p}/connections")

    @router.post(f"{p}/notifications")
    async def notifications(request: Request) -> Response:
        session = console.session(request)
        f = await console.form(request, session)
        shown = None
        try:
            if f.get("delete"):
                params: dict[str, Any] = {"Id": f["delete"]}

                def remove() -> None:
                    console.calls.authorize_route(
                        session.key_id,
                        "DELETE",
                        "/slipway/v1/notify/{target_id}",
                        params,
                        {"target_id": f["delete"]},
                    )
                    agent.notifier.remove_target(f["delete"])

                await console.act(request, session, "slipway:RemoveNotifyTarget", params, remove)
            else:
                params = {
                    "Url": f.get("url", ""),
                    "Pattern": f.get("pattern", ""),
                    "Format": f.get("format") or "json",
                }

                def add() -> dict[str, Any]:
                    console.calls.authorize_route(session.key_id, "POST", "/slipway/v1/notify", {})
                    return agent.notifier.add_target(
                        params["Url"], params["Pattern"], format=params["Format"]
                    )

                shown = await console.act(request, session, "slipway:AddNotifyTarget", params, add)
        except SlipwayError as exc:
            return await show(
                request, "notifications", {"errors": {"": [exc.message]}, "form": f}, 400
            )
        if shown:
            return await show(request, "notifications", {"shown": shown})
        return redirect(f"{p}/notifications")

    @router.get(f"{p}/keys")
    async def keys_page(request: Request) -> Response:
        return await keys_answer(request, {})

    async def keys_answer(request: Request, extra: dict[str, Any], status: int = 200) -> Response:
        session = console.session(request)

        def load() -> dict[str, Any]:
            console.calls.authorize_route(session.key_id, "GET", "/slipway/v1/keys", {})
            console.calls.authorize_route(session.key_id, "GET", "/slipway/v1/principals", {})
            principals = agent.access.list_principals()
            return {
                "keys": agent.access.list_keys(),
                "principals": principals,
                "principal_options": [(r["name"], r["name"]) for r in principals],
                "ready_made": sorted(READY_MADE),
            }

        context = await run_in_threadpool(load)
        context |= {"errors": {}, "form": {}, "shown": None, **extra}
        return console.page(request, "keys.html", context, session, status)

    @router.post(f"{p}/keys")
    async def keys_change(request: Request) -> Response:
        """A new key (its secret shown once), or a key enabled or disabled."""
        session = console.session(request)
        f = await console.form(request, session)
        key = session.key_id
        try:
            if f.get("key_id"):
                params: dict[str, Any] = {"Status": f.get("status", "")}

                def set_status() -> Any:
                    console.calls.authorize_route(
                        key,
                        "PUT",
                        "/slipway/v1/keys/{key_id}/status",
                        params,
                        {"key_id": f["key_id"]},
                    )
                    return agent.access.set_key_status(f["key_id"], params["Status"])

                await console.act(request, session, "slipway:UpdateKey", params, set_status)
                return redirect(f"{p}/keys")
            params = {"Principal": f.get("principal", ""), "Description": f.get("description", "")}

            def create() -> dict[str, Any]:
                console.calls.authorize_route(key, "POST", "/slipway/v1/keys", params)
                return agent.access.create_key(params["Principal"], params["Description"])

            shown = await console.act(request, session, "slipway:CreateKey", params, create)
        except SlipwayError as exc:
            return await keys_answer(request, {"errors": {"": [exc.message]}, "form": f}, 400)
        return await keys_answer(request, {"shown": shown})

    @router.post(f"{p}/principals")
    async def principals_change(request: Request) -> Response:
        """A new principal, or a policy (ready-made by name, or a document) attached to
        or detached from one: the API's ``/slipway/v1/principals`` calls."""
        session = console.session(request)
        f = await console.form(request, session)
        key, intent = session.key_id, f.get("intent", "")
        who = f.get("new_principal" if intent == "create" else "policy_principal", "")
        policy = f.get("policy_name", "")
        route = "/slipway/v1/principals/{principal}/policies/{policy}"
        names = {"principal": who, "policy": policy}
        params: dict[str, Any] = {"Principal": who, "PolicyName": policy}
        if intent == "create":
            params = {"Principal": who}
            action, method, path, work = (
                "slipway:CreatePrincipal",
                "POST",
                "/slipway/v1/principals",
                lambda: agent.access.create_principal(who),
            )
        elif intent == "attach":
            document = f.get("policy_document", "").strip() or None
            if document:
                params["PolicyDocument"] = document
            action, method, path, work = (
                "slipway:AttachPolicy",
                "PUT",
                route,
                lambda: agent.access.attach_policy(who, policy, document),
            )
        else:
            action, method, path, work = (
                "slipway:DetachPolicy",
                "DELETE",
                route,
                lambda: agent.access.detach_policy(who, policy),
            )

        def change() -> Any:
            console.calls.authorize_route(key, method, path, params, names)
            return work()

        try:
            await console.act(request, session, action, params, change)
        except SlipwayError as exc:
            first = exc.message.partition(":")[0]
            where = {
                "Principal": "new_principal" if intent == "create" else "policy_principal",
                "PolicyName": "policy_name",
                "PolicyDocument": "policy_document",
            }.get(first, "")
            return await keys_answer(request, {"errors": {where: [exc.message]}, "form": f}, 400)
        return redirect(f"{p}/keys")

    @router.get(f"{p}/audit")
    async def audit(request: Request) -> Response:
        session = console.session(request)
        q = request.query_params
        wanted = {k: q.get(k, "").strip() for k in ("principal", "action", "outcome")}

        def load() -> list[dict[str, Any]]:
            console.calls.authorize_route(session.key_id, "GET", "/slipway/v1/audit", {})
            owners = {k["id"]: k["principal"] for k in agent.access.list_keys()}
            rows = []
            for r in reversed(agent.audit.list(None, None, AUDIT_ROWS)):
                row = {**r, "principal": owners.get(r["access_key_id"] or "", "")}
                if wanted["principal"] and row["principal"] != wanted["principal"]:
                    continue
                if wanted["action"] and wanted["action"].lower() not in r["operation"].lower():
                    continue
                if wanted["outcome"] and r["outcome"] != wanted["outcome"]:
                    continue
                row["params_text"] = json.dumps(r["params"]) if r["params"] else ""
                rows.append(row)
            return rows

        rows = await run_in_threadpool(load)
        return console.page(request, "audit.html", {"rows": rows, "wanted": wanted}, session)

    return router


def _number(value: str) -> int | str:
    """A whole number for the API, or the text as typed (the API's check names it)."""
    try:
        return int(value)
    except ValueError:
        return value


async def _authorize(
    console: Console, request: Request, session: Any, f: dict[str, str]
) -> dict[str, Any]:
    """GitHub's step after CreateConnection: a token, or a GitHub App's credentials."""
    name = f["authorize"]
    params = {"Name": name}

    def work() -> dict[str, Any]:
        console.calls.authorize_route(
            session.key_id,
            "POST",
            "/slipway/v1/connections/{name}/authorize",
            params,
            {"name": name},
        )
        app = None
        if f.get("app_id"):
            app = AppCredentials(
                app_id=int(f["app_id"]),
                private_key=f.get("private_key", ""),
                installation_id=int(f["installation_id"]) if f.get("installation_id") else None,
            )
        row = console.agent.connections.authorize(name, token=f.get("token") or None, app=app)
        return {
            "webhook_url": f"{console.settings.webhook_base}/hooks/github",
            "webhook_secret": row["webhook_secret"],
            "account": row["account"],
        }

    return await console.act(request, session, "slipway:AuthorizeConnection", params, work)
