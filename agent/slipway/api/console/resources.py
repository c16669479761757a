"""The console's pages for what a service refers to by ARN: observability
configurations (tracing), VPC connectors and VPC ingress connections, and a service's
own observability setting. Each list and change is the API's own call, audited under
the session's key."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...console import pages
from ...console.sessions import Session
from .services import service_change
from .web import Console, redirect

# Member paths of the API's messages -> the form field they belong next to.
FIELDS = {
    "ObservabilityConfigurationName": "name",
    "TraceConfiguration": "vendor",
    "VpcConnectorName": "connector_name",
    "Subnets": "subnets",
    "SecurityGroups": "security_groups",
    "VpcIngressConnectionName": "ingress_name",
    "ServiceArn": "service",
    "IngressVpcConfiguration.VpcId": "vpc_id",
    "IngressVpcConfiguration.VpcEndpointId": "vpc_endpoint_id",
    "IngressVpcConfiguration": "vpc_id",
}
VENDORS = [("", "No tracing"), ("AWSXRAY", "AWS X-Ray (OpenTelemetry)")]


def _ids(text: str) -> list[str]:
    """Subnet or security group ids typed one per line or separated by commas."""
    return [part for part in re.split(r"[\s,]+", text) if part]


def _secret_errors(form: dict[str, str], errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """The secret rules' messages next to their fields: each leads with what it judges
    (``secret name ...``, ``service name ...``, ``secret NAME: the value ...``)."""
    put = form.get("intent", "put") == "put"
    out: dict[str, list[str]] = {}
    for message in (m for ms in errors.values() for m in ms):
        if message.startswith(("secret name", "no secret named")):
            field = "secret_name" if put else "secret"
        elif message.startswith("service name") or "is not granted" in message:
            field = "services" if put else "service"
        elif message.startswith("secret ") and put:
            field = "value"
        else:
            field = ""
        out.setdefault(field, []).append(message)
    return out


def resources_router(console: Console) -> APIRouter:
    router = APIRouter()
    call = console.calls.app_runner
    p = pages.PREFIX

    def observability(key_id: str) -> dict[str, Any]:
        listed = call(key_id, "ListObservabilityConfigurations", {"LatestOnly": False})
        arns = [
            r["ObservabilityConfigurationArn"]
            for r in listed["ObservabilityConfigurationSummaryList"]
        ]
        configs = [
            call(key_id, "DescribeObservabilityConfiguration", {"ObservabilityConfigurationArn": a})
            for a in arns
        ]
        return {"configs": [c["ObservabilityConfiguration"] for c in configs], "vendors": VENDORS}

    def vpc(key_id: str) -> dict[str, Any]:
        listed = call(key_id, "ListVpcIngressConnections", {})["VpcIngressConnectionSummaryList"]
        ingress = [
            call(key_id, "DescribeVpcIngressConnection", {"VpcIngressConnectionArn": a})
            for a in (r["VpcIngressConnectionArn"] for r in listed)
        ]
        services = call(key_id, "ListServices", {})["ServiceSummaryList"]
        return {
            "connectors": call(key_id, "ListVpcConnectors", {})["VpcConnectors"],
            "ingress": [i["VpcIngressConnection"] for i in ingress],
            "service_options": [(s["ServiceArn"], s["ServiceName"]) for s in services],
        }

    def secrets(key_id: str) -> dict[str, Any]:
        console.calls.authorize_route(key_id, "GET", "/slipway/v1/secrets", {})
        rows = console.agent.secrets.list()
        return {"secrets": rows, "secret_options": [(r["name"], r["name"]) for r in rows]}

    loaders: dict[str, Callable[[str], dict[str, Any]]] = {
        "observability": observability,
        "vpc": vpc,
        "secrets": secrets,
    }

    async def show(
        request: Request, what: str, extra: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        session = console.session(request)
        context = await run_in_threadpool(loaders[what], session.key_id)
        context |= {"errors": {}, "form": {}, **(extra or {})}
        return console.page(request, f"{what}.html", context, session, status)

    def shown_again(request: Request, what: str) -> Any:
        async def answer(_: Session, f: dict[str, str], errors: dict[str, list[str]]) -> Response:
            if what == "secrets":
                errors = _secret_errors(f, errors)
                f.pop("value", None)  # a secret's value is never sent back, even refused
            return await show(request, what, {"errors": errors, "form": f}, 400)

        return answer

    for what in loaders:

        async def page(request: Request, what: str = what) -> Response:
            return await show(request, what)

        router.get(f"{p}/{what}")(page)

    @router.post(f"{p}/observability")
    async def observability_change(request: Request) -> Response:
        async def change(session: Session, f: dict[str, str]) -> None:
            def created() -> dict[str, Any]:
                params: dict[str, Any] = {"ObservabilityConfigurationName": f.get("name", "")}
                if f.get("vendor"):
                    params["TraceConfiguration"] = {"Vendor": f["vendor"]}
                return params

            kind = "ObservabilityConfiguration"
            await console.create_or_delete(request, session, kind, f, created)

        return await console.submit(
            request,
            change,
            lambda _: redirect(f"{p}/observability"),
            shown_again(request, "observability"),
            FIELDS,
        )

    @router.post(f"{p}/vpc")
    async def vpc_change(request: Request) -> Response:
        async def change(session: Session, f: dict[str, str]) -> None:
            intent = f.get("intent", "")
            if intent == "delete_connector":
                operation, params = "DeleteVpcConnector", {"VpcConnectorArn": f.get("arn", "")}
            elif intent == "delete_ingress":
                operation = "DeleteVpcIngressConnection"
                params = {"VpcIngressConnectionArn": f.get("arn", "")}
            elif intent == "ingress":
                operation = "CreateVpcIngressConnection"
                params = {
                    "ServiceArn": f.get("service", ""),
                    "VpcIngressConnectionName": f.get("ingress_name", ""),
                    "IngressVpcConfiguration": {
                        "VpcId": f.get("vpc_id", ""),
                        "VpcEndpointId": f.get("vpc_endpoint_id", ""),
                    },
                }
            else:
                operation = "CreateVpcConnector"
                params = {
                    "VpcConnectorName": f.get("connector_name", ""),
                    "Subnets": _ids(f.get("subnets", "")),
                    "SecurityGroups": _ids(f.get("security_groups", "")),
                }
            await console.app_runner(request, session, operation, params)

        return await console.submit(
            request, change, lambda _: redirect(f"{p}/vpc"), shown_again(request, "vpc"), FIELDS
        )

    @router.post(f"{p}/secrets")
    async def secrets_change(request: Request) -> Response:
        """A secret created or its value replaced (never shown back), granted to or
        revoked from a service, or deleted: the ``/slipway/v1/secrets`` routes' work."""
        store = console.agent.secrets

        async def change(session: Session, f: dict[str, str]) -> None:
            intent = f.get("intent", "put")
            name = f.get("secret_name" if intent == "put" else "secret", "")
            service = f.get("service", "")
            grants = "/slipway/v1/secrets/grants"
            if intent == "put":
                value, services = f.get("value", ""), _ids(f.get("services", ""))
                params = {"Name": name, "SecretString": value, "Services": services}
                action, route = "slipway:PutSecret", ("PUT", "/slipway/v1/secrets")
                work = partial(store.put, name, value, services)
            elif intent == "delete":
                params = {"Name": name}
                action, route = "slipway:DeleteSecret", ("DELETE", "/slipway/v1/secrets")
                work = partial(store.delete, name)
            elif intent == "grant":
                params = {"Name": name, "Service": service}
                action, route = "slipway:GrantSecret", ("PUT", grants)
                work = partial(store.grant, name, service)
            else:
                params = {"Name": name, "Service": service}
                action, route = "slipway:RevokeSecret", ("DELETE", grants)
                work = partial(store.revoke, name, service)
            await console.slipway(request, session, action, route, params, work)

        return await console.submit(
            request, change, lambda _: redirect(f"{p}/secrets"), shown_again(request, "secrets")
        )

    @router.post(f"{p}/services/{{name}}/{{sid}}/observability")
    async def service_observability(name: str, sid: str, request: Request) -> Response:
        """The service's tracing: on with a configuration, or off (UpdateService)."""

        def params(f: dict[str, str]) -> dict[str, Any]:
            chosen = f.get("observability", "")
            setting: dict[str, Any] = {"ObservabilityEnabled": bool(chosen)}
            if chosen:
                setting["ObservabilityConfigurationArn"] = chosen
            arn = console.service_arn(name, sid)
            return {"ServiceArn": arn, "ObservabilityConfiguration": setting}

        return await service_change(
            console, request, name, sid, "UpdateService", params, "settings", field="observability"
        )

    return router
