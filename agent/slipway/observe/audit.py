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
  ``SecretAccessKey``, ``WebhookSecret``, ``RuntimeEnvironmentSecrets``,
  ``SecretString`` (a secret's value, ``slipway secrets put``);
* in any ``...EnvironmentVariables`` map that is still visible, the value of
  each variable whose name looks secret (secret, password, token, key, ...);
* a notification target's ``Url`` past its host: incoming-webhook URLs (Slack and
  the like) carry their credential in the path.
"""

from __future__ import annotations

import copy
import functools
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from botocore.model import OperationNotFoundError, Shape

from ..store import Store

__all__ = ["HIDDEN", "AuditTrail", "redact"]

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
        "SecretString",
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
        request_id: str | None = None,
    ) -> int:
        """Store one call; params are redacted here, so no caller can forget to.
        ``request_id`` is the ``x-amzn-RequestId`` the caller was answered with."""
        return self.store.add_audit(
            {
                "time": self.clock() if time is None else time,
                "access_key_id": access_key_id,
                "source_ip": source_ip,
                "user_agent": (user_agent or "")[:MAX_USER_AGENT] or None,
                "operation": operation,
                "params": redact(operation, params if isinstance(params, dict) else {}),
                "outcome": outcome,
                "request_id": request_id,
            }
        )

    def list(
        self, since: float | None = None, after_id: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Oldest first: after the cursor ``after_id``, from ``since`` on, or else the
        newest ``limit``."""
        limit = max(1, min(limit, MAX_LIST))
        return self.store.list_audit(since=since, after_id=after_id, limit=limit)
