"""The console's service pages: the list, one service's tabs, and the forms that
create, change, deploy, pause, resume, roll back and delete services and associate
custom domains. Every change is the API's own call (``Console.app_runner``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...console import forms, pages
from ...console.sessions import Session
from ...errors import InvalidRequest
from .web import Console, redirect

TABS = ("overview", "deployments", "logs", "metrics", "events", "revisions", "settings")
SPARK_MINUTES = 30
Errors = dict[str, list[str]]


def sparkline(values: list[int], width: int = 90, height: int = 20) -> str:
    """SVG polyline points of a requests-per-minute series (drawn without a script)."""
    top = max(values) or 1
    step = width / max(len(values) - 1, 1)
    return " ".join(
        f"{i * step:.0f},{height - (v / top) * (height - 2) - 1:.0f}" for i, v in enumerate(values)
    )


def services_router(console: Console) -> APIRouter:
    router = APIRouter()
    agent = console.agent
    p = pages.PREFIX

    def summaries(key_id: str, name: str, tag: str) -> list[dict[str, Any]]:
        """ListServices as the API answers it, with what the list shows beside each."""
        listed = console.calls.app_runner(key_id, "ListServices", {})["ServiceSummaryList"]
        records = {s.id: s for s in agent.store.list_services()}
        instances: dict[str, int] = defaultdict(int)
        for inst in agent.backend.list_instances():
            if inst.state == "running":
                instances[inst.service_id] += 1
        tag_key, _, tag_value = tag.partition("=")
        rows = []
        for s in listed:
            if name and name.lower() not in s["ServiceName"].lower():
                continue
            tags = agent.store.get_tags(s["ServiceArn"])
            if tag_key and (tag_key not in tags or (tag_value and tags[tag_key] != tag_value)):
                continue
            record = records.get(s["ServiceId"])
            recent = [r["requests"] for r in agent.metrics.recent(s["ServiceName"], SPARK_MINUTES)]
            rows.append(
                {
                    **s,
                    "Tags": tags,
                    "Revision": record.live_revision if record else None,
                    "Instances": instances[s["ServiceId"]],
                    "Spark": sparkline(recent),
                    "RequestsPerMinute": recent[-2] if len(recent) > 1 else 0,
                }
            )
        return sorted(rows, key=lambda r: r["ServiceName"])

    @router.get(f"{p}/services")
    async def service_list(request: Request) -> Response:
        session = console.session(request)
        name = request.query_params.get("q", "")
        tag = request.query_params.get("tag", "")
        rows = await run_in_threadpool(summaries, session.key_id, name, tag)
        template = "_service_rows.html" if request.headers.get("hx-request") else "services.html"
        return console.page(request, template, {"rows": rows, "q": name, "tag": tag}, session)

    @router.get(f"{p}/new")
    async def new_service(request: Request) -> Response:
        session = console.session(request)
        return console.page(
            request, "create.html", await _create_context(console, session, {}, {}), session
        )

    @router.post(f"{p}/new")
    async def create_service(request: Request) -> Response:
        async def change(session: Session, fields: dict[str, str]) -> dict[str, Any]:
            params = forms.create_service(fields)
            return await console.app_runner(request, session, "CreateService", params)

        def done(answer: dict[str, Any]) -> Response:
            svc, op = answer["Service"], answer["OperationId"]
            return redirect(f"{p}/services/{svc['ServiceName']}/{svc['ServiceId']}/operations/{op}")

        async def again(session: Session, fields: dict[str, str], errors: Errors) -> Response:
            context = await _create_context(console, session, fields, errors)
            return console.page(request, "create.html", context, session, 400)

        return await console.submit(request, change, done, again, forms.FIELDS)

    @router.get(f"{p}/services/{{name}}/{{sid}}")
    async def service_page(name: str, sid: str, request: Request) -> Response:
        session = console.session(request)
        tab = request.query_params.get("tab", "overview")
        if tab not in TABS:
            tab = "overview"
        arn = console.service_arn(name, sid)
        context = await run_in_threadpool(_service_context, console, session.key_id, arn, tab)
        context["q"] = request.query_params.get("q", "")
        return console.page(request, "service.html", context, session)

    for action, operation in (
        ("deploy", "StartDeployment"),
        ("pause", "PauseService"),
        ("resume", "ResumeService"),
    ):

        async def button(
            name: str, sid: str, request: Request, operation: str = operation
        ) -> Response:
            """One button's App Runner call; its error shown on the page it came from."""
            arn = console.service_arn(name, sid)
            return await service_change(
                console, request, name, sid, operation, lambda _: {"ServiceArn": arn}
            )

        router.post(f"{p}/services/{{name}}/{{sid}}/{action}")(button)

    @router.post(f"{p}/services/{{name}}/{{sid}}/delete")
    async def delete(name: str, sid: str, request: Request) -> Response:
        def params(fields: dict[str, str]) -> dict[str, Any]:
            if fields.get("confirm") != name:
                raise InvalidRequest(f"Type the service's name, {name}, to delete it")
            return {"ServiceArn": console.service_arn(name, sid)}

        return await service_change(
            console, request, name, sid, "DeleteService", params, "settings", field="confirm"
        )

    @router.post(f"{p}/services/{{name}}/{{sid}}/update")
    async def update(name: str, sid: str, request: Request) -> Response:
        arn = console.service_arn(name, sid)
        return await service_change(
            console,
            request,
            name,
            sid,
            "UpdateService",
            partial(forms.update_service, arn),
            "settings",
            typed=True,
        )

    @router.post(f"{p}/services/{{name}}/{{sid}}/domains")
    async def domains(name: str, sid: str, request: Request) -> Response:
        async def change(session: Session, fields: dict[str, str]) -> None:
            arn = console.service_arn(name, sid)
            params: dict[str, Any] = {"ServiceArn": arn, "DomainName": fields.get("domain", "")}
            remove = fields.get("remove") == "1"
            if not remove:
                params["EnableWWWSubdomain"] = fields.get("www") == "on"
            operation = "DisassociateCustomDomain" if remove else "AssociateCustomDomain"
            await console.app_runner(request, session, operation, params)

        return await console.submit(
            request,
            change,
            lambda _: redirect(f"{p}/services/{name}/{sid}?tab=overview#domains"),
            again(console, request, name, sid, "overview", field="domain"),
        )

    @router.post(f"{p}/services/{{name}}/{{sid}}/rollback")
    async def rollback(name: str, sid: str, request: Request) -> Response:
        async def change(session: Session, fields: dict[str, str]) -> str:
            arn = console.service_arn(name, sid)
            params = {"ServiceArn": arn, "Revision": fields.get("revision") or None}
            return await console.slipway(
                request,
                session,
                "slipway:Rollback",
                ("POST", "/slipway/v1/rollback"),
                params,
                lambda: agent.services.rollback(arn, params["Revision"]),
            )

        return await console.submit(
            request,
            change,
            operation_or(name, sid),
            again(console, request, name, sid, "revisions"),
        )

    @router.get(f"{p}/services/{{name}}/{{sid}}/operations/{{op_id}}")
    async def operation_page(name: str, sid: str, op_id: str, request: Request) -> Response:
        session = console.session(request)
        arn = console.service_arn(name, sid)

        def load() -> dict[str, Any]:
            svc = console.calls.app_runner(session.key_id, "DescribeService", {"ServiceArn": arn})
            op = agent.store.get_operation(op_id)
            if op is None or op.service_id != sid:
                raise InvalidRequest(f"Operation {op_id} is not one of {name}'s")
            return {"service": svc["Service"], "op": op}

        return console.page(request, "operation.html", await run_in_threadpool(load), session)

    return router


def again(
    console: Console,
    request: Request,
    name: str,
    sid: str,
    tab: str = "",
    field: str = "",
    typed: bool = False,
) -> Any:
    """A refused form: the service's tab again (``tab``, else the form's), the form as
    typed when ``typed``, and the messages all next to ``field``, or next to their own
    fields when ``typed``, or else all at the top (a button's tab may show no field)."""

    async def answer(session: Session, fields: dict[str, str], errors: Errors) -> Response:
        shown = tab or fields.get("tab", "overview")
        arn = console.service_arn(name, sid)
        context = await run_in_threadpool(_service_context, console, session.key_id, arn, shown)
        every = [m for ms in errors.values() for m in ms]
        if typed:
            context["form"] = fields
        if field:
            errors = {field: every}
        elif not typed:
            context["error"], errors = "; ".join(every), {}
        context |= {"errors": errors, "q": ""}
        return console.page(request, "service.html", context, session, 400)

    return answer


def operation_or(name: str, sid: str, tab: str = "overview") -> Any:
    """After a change: its operation's page, or the tab it came from."""

    def done(op: str | None) -> Response:
        to = f"{pages.PREFIX}/services/{name}/{sid}"
        return redirect(f"{to}/operations/{op}" if op else f"{to}?tab={tab}")

    return done


async def service_change(
    console: Console,
    request: Request,
    name: str,
    sid: str,
    operation: str,
    params: Callable[[dict[str, str]], dict[str, Any]],
    tab: str = "",
    **where: Any,
) -> Response:
    """A form on a service's page that makes one App Runner call (its parameters made
    from the form by ``params``): the operation's page after, or the ``tab`` again with
    the refusal (``where``: as ``again`` takes them; the API's members placed by
    ``forms.FIELDS``)."""

    async def change(session: Session, fields: dict[str, str]) -> str | None:
        answer = await console.app_runner(request, session, operation, params(fields))
        return answer.get("OperationId")

    refused = again(console, request, name, sid, tab, **where)
    return await console.submit(request, change, operation_or(name, sid), refused, forms.FIELDS)


async def _create_context(
    console: Console, session: Session, form: dict[str, str], errors: dict[str, list[str]]
) -> dict[str, Any]:
    def load() -> dict[str, Any]:
        key = session.key_id
        configs = console.calls.app_runner(key, "ListAutoScalingConfigurations", {})
        conns = console.calls.app_runner(key, "ListConnections", {})
        return {
            "auto_scaling": configs["AutoScalingConfigurationSummaryList"],
            "connections": conns["ConnectionSummaryList"],
        }

    return {**await run_in_threadpool(load), "form": form, "errors": errors}


def _service_context(console: Console, key_id: str, arn: str, tab: str) -> dict[str, Any]:
    """What one tab of the service page shows, read through the API's calls."""
    agent = console.agent
    call = console.calls.app_runner
    svc = call(key_id, "DescribeService", {"ServiceArn": arn})["Service"]
    record = agent.services.service(arn)
    context: dict[str, Any] = {
        "service": svc,
        "record": record,
        "tab": tab,
        "tabs": TABS,
        "error": None,
        "errors": {},
        "form": forms.form_of(svc),
        "tags": call(key_id, "ListTagsForResource", {"ResourceArn": arn})["Tags"],
    }
    if tab == "overview":
        context["instances"] = agent.backend.list_instances(record.id)
        context["domains"] = call(key_id, "DescribeCustomDomains", {"ServiceArn": arn})
    elif tab == "deployments":
        context["operations"] = call(key_id, "ListOperations", {"ServiceArn": arn})[
            "OperationSummaryList"
        ]
    elif tab == "logs":
        console.calls.authorize_route(key_id, "GET", "/slipway/v1/logs", {"ServiceArn": arn})
        streams = agent.logs.streams(record.id, "application")
        context["lines"] = agent.logs.read_merged(record.id, streams, 0, limit=300, newest=True)
    elif tab == "events":
        console.calls.authorize_route(key_id, "GET", "/slipway/v1/events", {"ServiceArn": arn})
        context["events"] = agent.events.list(record.id, None, None, 200)
    elif tab == "revisions":
        console.calls.authorize_route(key_id, "GET", "/slipway/v1/revisions", {"ServiceArn": arn})
        context["revisions"] = agent.services.rollback_candidates(record)
        console.calls.authorize_route(key_id, "GET", "/slipway/v1/traffic", {"ServiceArn": arn})
        context["traffic"] = agent.splits.describe(arn)
    elif tab == "metrics":
        context["history_minutes"] = agent.metrics_history.max_minutes
    elif tab == "settings":
        context["auto_scaling"] = call(key_id, "ListAutoScalingConfigurations", {})[
            "AutoScalingConfigurationSummaryList"
        ]
        context["observability"] = call(key_id, "ListObservabilityConfigurations", {})[
            "ObservabilityConfigurationSummaryList"
        ]
    return context
