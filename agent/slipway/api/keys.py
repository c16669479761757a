"""``/slipway/v1/keys`` and ``/slipway/v1/principals``: slipway's own signed endpoints for
access keys and the principals they belong to (``access.py`` holds the rules). A key's
secret is answered once, at creation or rotation, and never stored in clear or audited
(``SecretAccessKey`` is a credential member of ``observe/audit.py``).

    GET    /slipway/v1/keys                                  list (?Principal=)
    POST   /slipway/v1/keys          {Principal?, Description?, Expires?}   create
    PUT    /slipway/v1/keys/{id}/status   {Status: Active|Inactive}        enable, disable
    POST   /slipway/v1/keys/{id}/rotate                      a new key, the old one Inactive
    DELETE /slipway/v1/keys/{id}                             delete
    GET    /slipway/v1/principals                            list, with policies and keys
    POST   /slipway/v1/principals    {Principal}             create
    PUT    /slipway/v1/principals/{p}/policies/{name}   {PolicyDocument?}   attach: a
           ready-made policy by name, or PolicyDocument (an object or its JSON text)
    DELETE /slipway/v1/principals/{p}/policies/{name}        detach
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..access import ROOT, Access
from ..errors import InvalidRequest

Authenticate = Callable[[Request, bytes], Awaitable[Any]]
SignedCall = Callable[[Request, str, Callable[[dict[str, Any]], Any]], Awaitable[Any]]


def key_to_api(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "AccessKeyId": row["id"],
        "Principal": row["principal"],
        "Status": row["status"],
        "Description": row["description"] or "",
        "CreatedAt": row["created_at"],
        "ExpiresAt": row["expires_at"],
        "LastUsedAt": row["last_used_at"],
    }


def _optional_text(params: dict[str, Any], member: str) -> str | None:
    value = params.get(member)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{member}: must be a string")
    return value


def keys_router(access: Access, authenticate: Authenticate, signed_call: SignedCall) -> APIRouter:
    router = APIRouter()

    @router.get("/slipway/v1/keys")
    async def list_keys(request: Request) -> JSONResponse:
        await authenticate(request, b"")
        rows = await run_in_threadpool(access.list_keys, request.query_params.get("Principal"))
        return JSONResponse({"Keys": [key_to_api(r) for r in rows]})

    @router.post("/slipway/v1/keys")
    async def create_key(request: Request) -> JSONResponse:
        def work(p: dict[str, Any]) -> dict[str, Any]:
            return access.create_key(
                _optional_text(p, "Principal") or ROOT,
                _optional_text(p, "Description") or "",
                _optional_text(p, "Expires"),
            )

        return JSONResponse(await signed_call(request, "slipway:CreateKey", work))

    @router.put("/slipway/v1/keys/{key_id}/status")
    async def set_status(key_id: str, request: Request) -> JSONResponse:
        row = await signed_call(
            request,
            "slipway:UpdateKey",
            lambda p: access.set_key_status(key_id, str(p.get("Status", ""))),
        )
        return JSONResponse({"Key": key_to_api(row)})

    @router.post("/slipway/v1/keys/{key_id}/rotate")
    async def rotate(key_id: str, request: Request) -> JSONResponse:
        created = await signed_call(
            request, "slipway:RotateKey", lambda _: access.rotate_key(key_id)
        )
        return JSONResponse({**created, "Replaced": key_id})

    @router.delete("/slipway/v1/keys/{key_id}")
    async def delete_key(key_id: str, request: Request) -> JSONResponse:
        await signed_call(request, "slipway:DeleteKey", lambda _: access.delete_key(key_id))
        return JSONResponse({"AccessKeyId": key_id})

    @router.get("/slipway/v1/principals")
    async def list_principals(request: Request) -> JSONResponse:
        await authenticate(request, b"")
        rows = await run_in_threadpool(access.list_principals)
        return JSONResponse(
            {
                "Principals": [
                    {
                        "Principal": r["name"],
                        "CreatedAt": r["created_at"],
                        "Policies": r["policies"],
                        "AccessKeyIds": r["keys"],
                    }
                    for r in rows
                ]
            }
        )

    @router.post("/slipway/v1/principals")
    async def create_principal(request: Request) -> JSONResponse:
        row = await signed_call(
            request,
            "slipway:CreatePrincipal",
            lambda p: access.create_principal(p.get("Principal")),
        )
        return JSONResponse({"Principal": row["name"], "CreatedAt": row["created_at"]})

    @router.put("/slipway/v1/principals/{principal}/policies/{policy}")
    async def attach(principal: str, policy: str, request: Request) -> JSONResponse:
        await signed_call(
            request,
            "slipway:AttachPolicy",
            lambda p: access.attach_policy(principal, policy, p.get("PolicyDocument")),
        )
        return JSONResponse({"Principal": principal, "PolicyName": policy})

    @router.delete("/slipway/v1/principals/{principal}/policies/{policy}")
    async def detach(principal: str, policy: str, request: Request) -> JSONResponse:
        await signed_call(
            request, "slipway:DetachPolicy", lambda _: access.detach_policy(principal, policy)
        )
        return JSONResponse({"Principal": principal, "PolicyName": policy})

    return router
