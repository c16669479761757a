"""The outermost layer of every request, before routing and any authentication work:
a request id on every answer, and the body cap.

* Every response carries ``x-amzn-RequestId`` (a UUID, as App Runner's do); the id is
  in ``scope["state"]["request_id"]`` for the audit row (``request_id``).
* A body is refused with 413 from its ``Content-Length`` before a byte is read, and a
  body without one (chunked) is counted while it is read: past the cap, reading it
  raises ``RequestTooLarge``, rendered like every other error, so no more than the cap
  plus one chunk is ever held. Webhooks get their own, larger cap.
* A failure nobody expected (not a ``SlipwayError``, which the app renders) is logged
  with its traceback and answered as App Runner answers one: 500,
  ``InternalServiceErrorException`` in JSON, with the request id; never the plain-text
  500 of the server underneath. Once an answer has started it can only be cut short.
* ``client_address``: behind the Caddy ingress every connection comes from loopback,
  so the client is the address Caddy puts in ``CLIENT_HEADER``; that header is trusted
  from loopback only.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import uuid
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..edgelimits import EdgeLimits, RequestTooLarge
from ..errors import SlipwayError
from ..routing.ingress import CLIENT_HEADER, HOOK_PATHS

log = logging.getLogger("slipway.api")

REQUEST_ID_HEADER = "x-amzn-RequestId"
_CLIENT_HEADER = CLIENT_HEADER.lower().encode("latin-1")


def request_id(request: Request) -> str | None:
    """The id ``Edge`` gave this request (None outside it: unit tests of a router)."""
    return request.scope.get("state", {}).get("request_id")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_address(scope: Scope) -> str:
    """The client's address: the peer's, or Caddy's word for it when the peer is loopback."""
    client = scope.get("client")
    peer = client[0] if client else ""
    if _is_loopback(peer):
        for name, value in scope.get("headers", ()):
            if name == _CLIENT_HEADER:
                said = value.decode("latin-1").strip()
                try:
                    return str(ipaddress.ip_address(said))
                except ValueError:
                    break
    return peer


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Edge:
    """ASGI middleware wrapping the whole app: request ids and the body cap."""

    def __init__(self, app: ASGIApp, limits: EdgeLimits) -> None:
        self.app = app
        self.limits = limits

    def cap_for(self, path: str) -> tuple[int, str]:
        if path in HOOK_PATHS:
            return self.limits.max_hook_bytes, "max_hook_bytes"
        return self.limits.max_request_bytes, "max_request_bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        cap, setting = self.cap_for(scope.get("path", ""))
        declared = _declared_length(scope)
        if declared is not None and declared > cap:
            too_large = RequestTooLarge(f"body of {declared} bytes is over {cap} ({setting})")
            await _answer(send_with_id, too_large, close=True)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise RequestTooLarge(f"body is over {cap} bytes ({setting})")
            return message

        try:
            await self.app(scope, counted, send_with_id)
        except Exception:
            if started:
                raise
            log.exception(
                "internal error in %s %s (request %s)", scope["method"], scope["path"], rid
            )
            failure = SlipwayError(f"An internal error occurred (request {rid})")
            await _answer(send_with_id, failure, close=False)


async def _answer(send: Send, exc: SlipwayError, *, close: bool) -> None:
    """``exc`` in App Runner's error shape, from below the app; ``close`` when the unread
    body must never be drained (413)."""
    body = json.dumps({"__type": exc.code, "Message": exc.message}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/x-amz-json-1.0"),
        (b"content-length", str(len(body)).encode()),
        (b"x-amzn-errortype", exc.code.encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": exc.status,
        "headers": headers,
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
