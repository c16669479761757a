"""What every console route shares: the session of a request, its form with the CSRF
check, rendering with the console's headers, and actions run through the API's own
calls (``Calls``) with one audit row each under the session's key."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...console import pages
from ...console.forms import FormError
from ...console.sessions import COOKIE, Session, SessionExpired, Sessions
from ...errors import AuthError, ResourceNotFound, SlipwayError
from ..calls import Calls
from ..observe import audited_call
from ..sigv4 import Caller

if TYPE_CHECKING:
    from ...agent import Agent

FORM_FIELDS_MAX = 200  # a console form has a few dozen fields at most


class CsrfRefused(AuthError):
    """A console form without its session's CSRF token (AccessDeniedException, 403)."""


class Console:
    """The console's shared state: the agent, its calls, sessions and templates."""

    def __init__(self, agent: Agent, calls: Calls) -> None:
        self.agent = agent
        self.calls = calls
        self.settings = agent.settings
        self.sessions = Sessions(
            agent.settings.console_session_ttl,
            agent.settings.console_link_ttl,
            key_usable=lambda key_id: agent.access.lookup_secret(key_id) is not None,
            kept=agent.store,
        )
        self.env = pages.environment()

    # -- who is asking --------------------------------------------------------------

    def session(self, request: Request) -> Session:
        return self.sessions.get(request.cookies.get(COOKIE))

    def principal(self, key_id: str) -> str:
        row = self.agent.store.get_access_key(key_id)
        return row["principal"] if row else "unknown"

    @staticmethod
    def secure(request: Request) -> bool:
        """Over HTTPS: the agent's own scheme, or Caddy's X-Forwarded-Proto when Caddy
        (on loopback, ``api_domain``) proxied the request."""
        if request.url.scheme == "https":
            return True
        try:
            local = (
                request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
            )
        except ValueError:
            local = False
        return local and request.headers.get("x-forwarded-proto") == "https"

    def sign_in(self, request: Request, key_id: str, to: str) -> Response:
        """A new session's cookie: kept by the browser until it closes, while the server
        ends the session at ``console_session_ttl`` (and says so when it is sent later)."""
        token, _ = self.sessions.start(key_id)
        response = RedirectResponse(to, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            path=pages.PREFIX,
            httponly=True,
            secure=self.secure(request),
            samesite="strict",
        )
        return response

    # -- forms ----------------------------------------------------------------------

    async def form(self, request: Request, session: Session) -> dict[str, str]:
        """The posted fields (urlencoded), once the CSRF token matches the session's."""
        body = (await request.body()).decode("utf-8", "replace")
        fields = dict(parse_qsl(body, keep_blank_values=True, max_num_fields=FORM_FIELDS_MAX))
        if not self.sessions.csrf_ok(session, fields.pop("csrf", None)):
            raise CsrfRefused(
                "The form's security token (CSRF) is missing or wrong: "
                "reload the page and submit again"
            )
        return fields

    async def act(
        self,
        request: Request,
        session: Session,
        operation: str,
        params: dict[str, Any],
        work: Callable[[], Any],
    ) -> Any:
        """Run ``work`` in a thread with one audit row under the session's key."""
        async with audited_call(
            self.agent.audit, request, Caller(session.key_id), operation
        ) as call:
            call.params = params
            return await run_in_threadpool(work)

    async def app_runner(
        self, request: Request, session: Session, operation: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """An App Runner call from a console form, exactly as the API makes it."""
        return await self.act(
            request,
            session,
            operation,
            params,
            lambda: self.calls.app_runner(session.key_id, operation, params),
        )

    async def slipway(
        self,
        request: Request,
        session: Session,
        action: str,
        route: tuple[str, str],
        params: dict[str, Any],
        work: Callable[[], Any],
        names: Mapping[str, str] | None = None,
    ) -> Any:
        """A ``/slipway/v1`` route's work from a console form: the route's own policy
        check (``authorize_route``, method and path template) first, then ``work``,
        audited as ``action`` under the session's key."""

        def checked() -> Any:
            self.calls.authorize_route(session.key_id, route[0], route[1], params, names)
            return work()

        return await self.act(request, session, action, params, checked)

    async def submit(
        self,
        request: Request,
        change: Callable[[Session, dict[str, str]], Awaitable[Any]],
        done: Callable[[Any], Response | Awaitable[Response]],
        again: Callable[[Session, dict[str, str], dict[str, list[str]]], Awaitable[Response]],
        fields: Mapping[str, str] | Callable[[dict[str, str]], Mapping[str, str]] | None = None,
    ) -> Response:
        """One console form, the way every form goes: its fields once the CSRF token
        matches, ``change`` (the API's calls), then ``done`` with the answer; or, when
        the API refuses, ``again`` with the form as typed and each message next to the
        field its member names (``fields``: member path -> field, or made from the form)."""
        session = self.session(request)
        form = await self.form(request, session)
        try:
            answer = await change(session, form)
        except FormError as exc:
            errors = {exc.field: [exc.message]}
        except SlipwayError as exc:
            named = fields(form) if callable(fields) else fields or {}
            errors = pages.field_errors(exc.message, named)
        else:
            shown = done(answer)
            return await shown if isinstance(shown, Awaitable) else shown
        return await again(session, form, errors)

    async def create_or_delete(
        self,
        request: Request,
        session: Session,
        kind: str,
        form: dict[str, str],
        created: Callable[[], dict[str, Any]],
    ) -> None:
        """A configuration page's form (``kind``: ``AutoScalingConfiguration``...):
        ``Delete<kind>`` of the revision whose ARN its ``delete`` button names, or else
        ``Create<kind>`` with the parameters ``created`` makes of the form."""
        if form.get("delete"):
            params = {f"{kind}Arn": form["delete"]}
            await self.app_runner(request, session, f"Delete{kind}", params)
        else:
            await self.app_runner(request, session, f"Create{kind}", created())

    def service_arn(self, name: str, service_id: str) -> str:
        s = self.settings
        return f"arn:aws:apprunner:{s.region}:{s.account_id}:service/{name}/{service_id}"

    # -- answers --------------------------------------------------------------------

    def page(
        self,
        request: Request,
        name: str,
        context: dict[str, Any],
        session: Session | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        base = {
            "request_path": request.url.path,
            "csrf": session.csrf if session else "",
            "principal": self.principal(session.key_id) if session else None,
            "key_id": session.key_id if session else None,
        }
        html = pages.render(self.env, name, {**base, **context})
        return HTMLResponse(html, status_code=status, headers=pages.HEADERS)

    def refused(self, request: Request, exc: SlipwayError) -> HTMLResponse:
        """A session that ended, or a forged form: the sign-in page, saying why."""
        if isinstance(exc, SessionExpired):
            return self.page(
                request, "signin.html", {"error": exc.message, "next": request.url.path}, None, 401
            )
        status = exc.status if exc.status >= 500 or isinstance(exc, AuthError) else 404
        if not isinstance(exc, ResourceNotFound) and status == 404:
            status = 400
        try:  # a refusal inside a live session keeps the page's header
            session: Session | None = self.session(request)
        except SessionExpired:
            session = None
        return self.page(request, "error.html", {"error": exc.message}, session, status)


def redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303)
