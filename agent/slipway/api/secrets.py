"""``/slipway/v1/secrets``: slipway's own signed endpoints for secrets bound to services.
A value goes in (``PUT``, in the body, so never in a URL or an access log) and never
comes out: listings carry names, grants and times. Every change is audited, the value
hidden (``SecretString`` is a credential member of ``observe/audit.py``).

    PUT    /slipway/v1/secrets         {Name, SecretString, Services?}  create or replace
    GET    /slipway/v1/secrets                                          list
    DELETE /slipway/v1/secrets         {Name}                           delete, with grants
    PUT    /slipway/v1/secrets/grants  {Name, Service}                  grant
    DELETE /slipway/v1/secrets/grants  {Name, Service}                  revoke
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import InvalidRequest
from ..service_secrets import Secrets

Authenticate = Callable[[Request, bytes], Awaitable[Any]]
# app.py's signed_call: authenticate, decode a JSON object, run the work, audit the call.
SignedCall = Callable[[Request, str, Callable[[dict[str, Any]], Any]], Awaitable[Any]]


def to_api(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "Name": row["name"],
        "Grants": list(row["grants"]),
        "CreatedAt": row["created_at"],
        "UpdatedAt": row["updated_at"],
    }


def _text(params: dict[str, Any], member: str) -> str:
    value = params.get(member)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{member}: required, a string")
    return value


def secrets_router(
    secrets: Secrets, authenticate: Authenticate, signed_call: SignedCall
) -> APIRouter:
    router = APIRouter()

    @router.put("/slipway/v1/secrets")
    async def put(request: Request) -> JSONResponse:
        def work(params: dict[str, Any]) -> dict[str, Any]:
            services = params.get("Services") or []
            if not isinstance(services, list):
                raise InvalidRequest("Services: a list of service names")
            if not isinstance(params.get("SecretString"), str):
                raise InvalidRequest("SecretString: required, the secret's value as a string")
            return secrets.put(_text(params, "Name"), params["SecretString"], services)

        row = await signed_call(request, "slipway:PutSecret", work)
        return JSONResponse({"Secret": to_api(row), "Created": row["created"]})

    @router.get("/slipway/v1/secrets")
    async def list_secrets(request: Request) -> JSONResponse:
        await authenticate(request, b"")
        rows = await run_in_threadpool(secrets.list)
        return JSONResponse({"Secrets": [to_api(r) for r in rows]})

    @router.delete("/slipway/v1/secrets")
    async def delete(request: Request) -> JSONResponse:
        def work(params: dict[str, Any]) -> str:
            name = _text(params, "Name")
            secrets.delete(name)
            return name

        return JSONResponse({"Name": await signed_call(request, "slipway:DeleteSecret", work)})

    @router.put("/slipway/v1/secrets/grants")
    async def grant(request: Request) -> JSONResponse:
        row = await signed_call(
            request,
            "slipway:GrantSecret",
            lambda p: secrets.grant(_text(p, "Name"), _text(p, "Service")),
        )
        return JSONResponse({"Secret": to_api(row)})

    @router.delete("/slipway/v1/secrets/grants")
    async def revoke(request: Request) -> JSONResponse:
        row = await signed_call(
            request,
            "slipway:RevokeSecret",
            lambda p: secrets.revoke(_text(p, "Name"), _text(p, "Service")),
        )
        return JSONResponse({"Secret": to_api(row)})

    return router
