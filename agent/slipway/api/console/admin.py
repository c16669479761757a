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
from ...console.forms import FormError
from ...console.sessions import Session
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

    def again(request: Request, what: str) -> Any:
        """A refused form: its page again, with the form as typed and the messages."""

        async def answer(_: Session, f: dict[str, str], errors: dict[str, list[str]]) -> Response:
            return await show(request, what, {"errors": errors, "form": f}, 400)

        return answer

    def then(request: Request, what: str) -> Any:
        """After a change: the page showing once what it made (a secret), or a redirect."""

        def done(shown: Any) -> Any:
            return show(request, what, {"shown": shown}) if shown else redirect(f"{p}/{what}")

        return done

    @router.post(f"{p}/autoscaling")
    async def autoscaling(request: Request) -> Response:
        async def change(session: Session, f: dict[str, str]) -> None:
            def created() -> dict[str, Any]:
                params: dict[str, Any] = {"AutoScalingConfigurationName": f.get("name", "")}
                for member, field in (
                    ("MinSize", "min"),
                    ("MaxSize", "max"),
                    ("MaxConcurrency", "concurrency"),
                ):
                    if f.get(field):
                        params[member] = _number(f[field])
                return params

            kind = "AutoScalingConfiguration"
            await console.create_or_delete(request, session, kind, f, created)

        what = "autoscaling"
        return await console.submit(request, change, then(request, what), again(request, what))

    @router.post(f"{p}/connections")
    async def connections(request: Request) -> Response:
        async def change(session: Session, f: dict[str, str]) -> Any:
            if f.get("authorize"):
                return await _authorize(console, request, session, f)
            if f.get("delete"):
                operation, params = "DeleteConnection", {"ConnectionArn": f["delete"]}
            else:
                operation = "CreateConnection"
                params = {"ConnectionName": f.get("name", ""), "ProviderType": "GITHUB"}
            await console.app_runner(request, session, operation, params)
            return None

        what = "connections"
        return await console.submit(request, change, then(request, what), again(request, what))

    @router.post(f"{p}/notifications")
    async def notifications(request: Request) -> Response:
        async def change(session: Session, f: dict[str, str]) -> Any:
            if f.get("delete"):
                await console.slipway(
                    request,
                    session,
                    "slipway:RemoveNotifyTarget",
                    ("DELETE", "/slipway/v1/notify/{target_id}"),
                    {"Id": f["delete"]},
                    lambda: agent.notifier.remove_target(f["delete"]),
                    {"target_id": f["delete"]},
                )
                return None
            params = {
                "Url": f.get("url", ""),
                "Pattern": f.get("pattern", ""),
                "Format": f.get("format") or "json",
            }
            return await console.slipway(
                request,
                session,
                "slipway:AddNotifyTarget",
                ("POST", "/slipway/v1/notify"),
                params,
                lambda: agent.notifier.add_target(
                    params["Url"], params["Pattern"], format=params["Format"]
                ),
            )

        what = "notifications"
        return await console.submit(request, change, then(request, what), again(request, what))

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

    def keys_again(request: Request) -> Any:
        async def answer(_: Session, f: dict[str, str], errors: dict[str, list[str]]) -> Response:
            return await keys_answer(request, {"errors": errors, "form": f}, 400)

        return answer

    @router.post(f"{p}/keys")
    async def keys_change(request: Request) -> Response:
        """A new key (its secret shown once), or a key enabled or disabled."""

        async def change(session: Session, f: dict[str, str]) -> Any:
            if f.get("key_id"):
                await console.slipway(
                    request,
                    session,
                    "slipway:UpdateKey",
                    ("PUT", "/slipway/v1/keys/{key_id}/status"),
                    {"Status": f.get("status", "")},
                    lambda: agent.access.set_key_status(f["key_id"], f.get("status", "")),
                    {"key_id": f["key_id"]},
                )
                return None
            params = {"Principal": f.get("principal", ""), "Description": f.get("description", "")}
            return await console.slipway(
                request,
                session,
                "slipway:CreateKey",
                ("POST", "/slipway/v1/keys"),
                params,
                lambda: agent.access.create_key(params["Principal"], params["Description"]),
            )

        def done(shown: Any) -> Any:
            return keys_answer(request, {"shown": shown}) if shown else redirect(f"{p}/keys")

        return await console.submit(request, change, done, keys_again(request))

    @router.post(f"{p}/principals")
    async def principals_change(request: Request) -> Response:
        """A new principal, or a policy (ready-made by name, or a document) attached to
        or detached from one: the API's ``/slipway/v1/principals`` calls."""

        async def change(session: Session, f: dict[str, str]) -> None:
            intent = f.get("intent", "")
            who = f.get("new_principal" if intent == "create" else "policy_principal", "")
            policy = f.get("policy_name", "")
            route = "/slipway/v1/principals/{principal}/policies/{policy}"
            names = {"principal": who, "policy": policy}
            params: dict[str, Any] = {"Principal": who, "PolicyName": policy}
            if intent == "create":
                await console.slipway(
                    request,
                    session,
                    "slipway:CreatePrincipal",
                    ("POST", "/slipway/v1/principals"),
                    {"Principal": who},
                    lambda: agent.access.create_principal(who),
                )
            elif intent == "attach":
                document = f.get("policy_document", "").strip() or None
                if document:
                    params["PolicyDocument"] = document
                await console.slipway(
                    request,
                    session,
                    "slipway:AttachPolicy",
                    ("PUT", route),
                    params,
                    lambda: agent.access.attach_policy(who, policy, document),
                    names,
                )
            else:
                await console.slipway(
                    request,
                    session,
                    "slipway:DetachPolicy",
                    ("DELETE", route),
                    params,
                    lambda: agent.access.detach_policy(who, policy),
                    names,
                )

        def fields(f: dict[str, str]) -> dict[str, str]:
            create = f.get("intent") == "create"
            return {
                "Principal": "new_principal" if create else "policy_principal",
                "PolicyName": "policy_name",
                "PolicyDocument": "policy_document",
            }

        return await console.submit(
            request, change, lambda _: redirect(f"{p}/keys"), keys_again(request), fields
        )

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


def _whole(f: dict[str, str], field: str) -> int | None:
    """A whole-number field of the authorize form, or None when left empty."""
    if not f.get(field):
        return None
    try:
        return int(f[field])
    except ValueError:
        raise FormError("", f"{field}: {f[field]!r} is not a whole number") from None


async def _authorize(
    console: Console, request: Request, session: Session, f: dict[str, str]
) -> dict[str, Any]:
    """GitHub's step after CreateConnection: a token, or a GitHub App's credentials."""
    name = f["authorize"]
    app_id, installation_id = _whole(f, "app_id"), _whole(f, "installation_id")

    def work() -> dict[str, Any]:
        app = None
        if app_id is not None:
            app = AppCredentials(
                app_id=app_id,
                private_key=f.get("private_key", ""),
                installation_id=installation_id,
            )
        row = console.agent.connections.authorize(name, token=f.get("token") or None, app=app)
        return {
            "webhook_url": f"{console.settings.webhook_base}/hooks/github",
            "webhook_secret": row["webhook_secret"],
            "account": row["account"],
        }

    return await console.slipway(
        request,
        session,
        "slipway:AuthorizeConnection",
        ("POST", "/slipway/v1/connections/{name}/authorize"),
        {"Name": name},
        work,
        {"name": name},
    )
