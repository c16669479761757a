"""Signing in and out: with an access key id and its secret (checked as SigV4 checks
it, through ``Access.lookup_secret``, and the same failed-authentication budget), or
with a one-time link from ``slipway console-link``; sign-out ends the session on the
server. The signed ``POST /slipway/v1/console/links`` makes those links."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ...console import pages
from ...console.sessions import COOKIE, SessionExpired
from ...edgelimits import Throttled, TokenBuckets
from ...errors import UnrecognizedClient
from ..edge import client_address
from ..observe import record_request
from ..sigv4 import Caller
from .web import Console, redirect

WRONG_KEY = "The access key id or secret is wrong, or the key is not active"


def _next(value: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if value and value.startswith(pages.PREFIX + "/") and not value.startswith("//"):
        return value
    return f"{pages.PREFIX}/services"


def signin_router(
    console: Console,
    failures: TokenBuckets,
    authenticate: Callable[[Request, bytes], Awaitable[Any]],
) -> APIRouter:
    router = APIRouter()
    agent = console.agent
    p = pages.PREFIX

    @router.get(f"{p}/signin")
    async def signin_form(request: Request) -> Response:
        try:  # signed in already: the page keeps its header (and sign-out)
            session = console.session(request)
        except SessionExpired:
            session = None
        context = {"error": None, "next": _next(request.query_params.get("next"))}
        return console.page(request, "signin.html", context, session)

    @router.post(f"{p}/signin")
    async def signin(request: Request) -> Response:
        body = (await request.body()).decode("utf-8", "replace")
        fields = dict(parse_qsl(body, keep_blank_values=True, max_num_fields=10))
        key_id = fields.get("key_id", "").strip()
        secret = fields.get("secret", "")
        address = client_address(request.scope)
        to = _next(fields.get("next"))
        try:
            if not failures.allows(address):
                raise Throttled("Too many failed sign-ins from this address: wait a minute")
            known = await run_in_threadpool(agent.access.lookup_secret, key_id) if key_id else None
            if known is None or not hmac.compare_digest(known.encode(), secret.encode()):
                failures.take(address)
                raise UnrecognizedClient(WRONG_KEY)
        except (Throttled, UnrecognizedClient) as exc:
            await record_request(
                agent.audit, request, None, "slipway:ConsoleSignIn", None, exc.code
            )
            return console.page(
                request, "signin.html", {"error": exc.message, "next": to}, None, 401
            )
        await run_in_threadpool(agent.access.note_used, key_id)
        await record_request(
            agent.audit, request, Caller(key_id), "slipway:ConsoleSignIn", None, "OK"
        )
        return console.sign_in(request, key_id, to)

    @router.get(f"{p}/link/{{token}}")
    async def link(token: str, request: Request) -> Response:
        try:
            key_id = console.sessions.redeem(token)
            if await run_in_threadpool(agent.access.lookup_secret, key_id) is None:
                raise SessionExpired(f"Access key {key_id} is no longer active")
        except SessionExpired as exc:
            return console.page(
                request, "signin.html", {"error": exc.message, "next": ""}, None, 401
            )
        await record_request(
            agent.audit, request, Caller(key_id), "slipway:ConsoleSignIn", {"Link": True}, "OK"
        )
        return console.sign_in(request, key_id, f"{p}/services")

    @router.post(f"{p}/signout")
    async def signout(request: Request) -> Response:
        session = console.session(request)
        await console.form(request, session)
        console.sessions.end(request.cookies.get(COOKIE))
        await record_request(
            agent.audit, request, Caller(session.key_id), "slipway:ConsoleSignOut", None, "OK"
        )
        response = redirect(f"{p}/signin")
        response.delete_cookie(COOKIE, path=p)
        return response

    @router.post("/slipway/v1/console/links")
    async def new_link(request: Request) -> JSONResponse:
        """A one-time link that signs its opener in as the key that asked for it."""
        caller = await authenticate(request, await request.body())
        token, expires = console.sessions.new_link(caller.access_key_id)
        await record_request(agent.audit, request, caller, "slipway:CreateConsoleLink", None, "OK")
        return JSONResponse({"Path": f"{p}/link/{token}", "ExpiresAt": expires})

    return router
