"""The web console's routes, under ``/console`` on the agent's API listener (and on
``api_domain`` behind Caddy): sign-in (``signin.py``), service pages (``services.py``),
live updates (``live.py``), traffic (``traffic.py``), the other pages (``admin.py``,
``resources.py``), and its static files. It calls the API's own calls
(``api/calls.py``): the same validation, policies and audit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from ...console import pages
from ...edgelimits import TokenBuckets
from ...errors import SlipwayError
from .admin import admin_router
from .live import live_router
from .resources import resources_router
from .services import services_router
from .signin import signin_router
from .traffic import traffic_router
from .web import Console, redirect


def mount_console(
    app: FastAPI,
    console: Console,
    failures: TokenBuckets,
    authenticate: Callable[[Request, bytes], Awaitable[Any]],
) -> None:
    """Add the console's routes to the agent's app (after its error handler: under
    /console an error is a page, a session that ended the sign-in page saying why)."""

    api_answer = app.exception_handlers[SlipwayError]

    async def answer(request: Request, exc: Exception) -> Response:
        """Errors under /console are pages; the API's stay JSON (the API's handler)."""
        if isinstance(exc, SlipwayError) and request.url.path.startswith(pages.PREFIX + "/"):
            return console.refused(request, exc)
        return await api_answer(request, exc)

    app.add_exception_handler(SlipwayError, answer)

    @app.get(pages.PREFIX, include_in_schema=False)
    @app.get(pages.PREFIX + "/", include_in_schema=False)
    async def home() -> Response:
        return redirect(f"{pages.PREFIX}/services")

    app.include_router(signin_router(console, failures, authenticate))
    app.include_router(services_router(console))
    app.include_router(live_router(console))
    app.include_router(admin_router(console))
    app.include_router(resources_router(console))
    app.include_router(traffic_router(console))
    app.mount(f"{pages.PREFIX}/static", StaticFiles(directory=pages.STATIC), name="console-static")
