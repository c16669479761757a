"""The audit trail: who called which operation, from where, with what, and how it ended.

Like CloudTrail, parameters are kept, but secret ones are replaced by
``HIDDEN_DUE_TO_SECURITY_REASONS`` before anything is stored, so a reader sees that
they were passed, never their values. What is secret:

* every member botocore's App Runner model marks ``sensitive``, walking the
  operation's input shape: ``StartCommand``, ``BuildCommand``, and the whole
  ``RuntimeEnvironmentVariables`` and ``RuntimeEnvironmentSecrets`` maps (their
  keys are sensitive too, so CloudTrail hides the map, and so do we);
* credentials by name anywhere, for slipway's own endpoints that the model does
  not describe: ``Token``, ``PrivateKey``, ``Password``, ``Secret``,
  ``SecretAccessKey``, ``WebhookSecret``, ``RuntimeEnvironmentSecrets``;
* in any ``...EnvironmentVariables`` map that is still visible, the value of
  each variable whose name looks secret (secret, password, token, key, ...);
* a notification target's ``Url`` past its host: incoming-webhook URLs (Slack and
  the like) carry their credential in the path.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from botocore.model import OperationNotFoundError, Shape
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..errors import SlipwayError
from ..store import Store
from .events import cursor_query

__all__ = ["HIDDEN", "AuditTrail", "audit_router", "redact", "request_origin"]

HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"
MAX_LIST = 1000
MAX_USER_AGENT = 512

# Members that are credentials wherever they appear.
SECRET_MEMBERS = frozenset(
    {
        "Token",
        "PrivateKey",
        "Password",
        "Secret",
        "SecretAccessKey",
        "WebhookSecret",
        "RuntimeEnvironmentSecrets",
    }
)
# An environment variable whose name says it holds a secret.
SECRET_NAME = re.compile(
    r"secret|password|passwd|token|key|credential|auth|private|cert", re.IGNORECASE
)


@functools.cache
def _model() -> Any:
    """The apprunner service model, loaded once per process (~50 ms)."""
    return botocore.session.get_session().get_service_model("apprunner")


def _input_shape(operation: str) -> Shape | None:
    try:
        return _model().operation_model(operation).input_shape
    except OperationNotFoundError:
        return None


def redact(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` safe to store: secret values replaced by HIDDEN."""
    out = copy.deepcopy(params)
    shape = _input_shape(operation)
    if shape is not None:
        out = _by_model(out, shape)
    return _by_name(out)


def _sensitive(shape: Shape | None) -> bool:
    return bool(shape is not None and shape.metadata.get("sensitive"))


def _by_model(value: Any, shape: Shape) -> Any:
    """Follow the input shape: a sensitive member (or a map with sensitive keys or
    values, or a list of sensitive members) is hidden whole."""
    if value is None:
        return value
    if _sensitive(shape):
        return HIDDEN
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: _by_model(v, members[k]) if k in members else v for k, v in value.items()}
    if shape.type_name == "map" and isinstance(value, dict):
        if _sensitive(shape.key) or _sensitive(shape.value):
            return HIDDEN
        return {k: _by_model(v, shape.value) for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        if _sensitive(shape.member):
            return HIDDEN
        return [_by_model(v, shape.member) for v in value]
    return value


def _by_name(value: Any) -> Any:
    if isinstance(value, list):
        return [_by_name(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in SECRET_MEMBERS and item is not None:
            out[key] = HIDDEN
        elif key == "Url" and isinstance(item, str):
            out[key] = _url_origin(item)
        elif key.endswith("EnvironmentVariables") and isinstance(item, dict):
            out[key] = {
                name: HIDDEN if SECRET_NAME.search(str(name)) else v for name, v in item.items()
            }
        else:
            out[key] = _by_name(item)
    return out


def _url_origin(url: str) -> str:
    """Scheme and host of ``url``; the rest, and any user:password@, hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return HIDDEN
    host = parts.netloc.rpartition("@")[2]
    rest = parts._replace(scheme="", netloc="").geturl()
    if not parts.scheme or not host:
        return HIDDEN
    return f"{parts.scheme}://{host}" + (f"/{HIDDEN}" if rest not in ("", "/") else rest)


def request_origin(request: Request) -> tuple[str | None, str | None]:
    """The caller's address and User-Agent, as the audit trail records them."""
    client = request.client
    return (client.host if client else None), request.headers.get("user-agent")


@dataclass
class AuditedCall:
    params: Any = None  # the request's parameters, once decoded (redacted when stored)


class AuditTrail:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def record(
        self,
        time: float | None,  # the row's column; None: now
        access_key_id: str | None,
        source_ip: str | None,
        user_agent: str | None,
        operation: str,
        params: dict[str, Any] | None,
        outcome: str,
    ) -> int:
        """Store one call; params are redacted here, so no caller can forget to."""
        return self.store.add_audit(
            {
                "time": self.clock() if time is None else time,
                "access_key_id": access_key_id,
                "source_ip": source_ip,
                "user_agent": (user_agent or "")[:MAX_USER_AGENT] or None,
                "operation": operation,
                "params": redact(operation, params if isinstance(params, dict) else {}),
                "outcome": outcome,
            }
        )

    async def record_request(
        self,
        request: Request,
        caller: Any,
        operation: str,
        params: dict[str, Any] | None,
        outcome: str,
    ) -> int:
        """``record`` for a call the HTTP edge answered: the address and User-Agent come
        from ``request``, the access key from ``caller`` (sigv4.Caller, or None when
        authentication failed)."""
        source_ip, user_agent = request_origin(request)
        key_id = getattr(caller, "access_key_id", None)
        return await run_in_threadpool(
            self.record, None, key_id, source_ip, user_agent, operation, params, outcome
        )

    @contextlib.asynccontextmanager
    async def call(
        self, request: Request, caller: Any, operation: str
    ) -> AsyncIterator[AuditedCall]:
        """One row for the call run inside, whatever it answers: OK, or the code of the
        SlipwayError it raised; with the parameters the call set once it read them."""
        entry = AuditedCall()
        outcome = "OK"
        try:
            yield entry
        except SlipwayError as exc:
            outcome = exc.code
            raise
        finally:
            params = entry.params if isinstance(entry.params, dict) else None
            await self.record_request(request, caller, operation, params, outcome)

    def list(
        self, since: float | None = None, after_id: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Oldest first: after the cursor ``after_id``, from ``since`` on, or else the
        newest ``limit``."""
        limit = max(1, min(limit, MAX_LIST))
        return self.store.list_audit(since=since, after_id=after_id, limit=limit)


def audit_router(
    trail: AuditTrail, authenticate: Callable[[Request, bytes], Awaitable[Any]]
) -> APIRouter:
    """``GET /slipway/v1/audit?Since=&AfterId=&Limit=``, SigV4-verified first."""
    router = APIRouter()

    @router.get("/slipway/v1/audit")
    async def read_audit(request: Request) -> JSONResponse:
        await authenticate(request, b"")
        since, after_id, limit = cursor_query(request.query_params)
        rows = await run_in_threadpool(trail.list, since, after_id, limit)
        return JSONResponse(
            {
                "Events": [
                    {
                        "Id": r["id"],
                        "Time": r["time"],
                        "AccessKeyId": r["access_key_id"],
                        "SourceIp": r["source_ip"],
                        "UserAgent": r["user_agent"],
                        "Operation": r["operation"],
                        "Params": r["params"],
                        "Outcome": r["outcome"],
                    }
                    for r in rows
                ],
                "NextAfterId": rows[-1]["id"] if rows else after_id,
            }
        )

    return router
