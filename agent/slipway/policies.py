"""IAM-style access policies: parse and validate a policy document, and evaluate a
request against a principal's policies the way IAM does (an explicit Deny wins, then an
Allow, else the default deny).

Pure: no store, no HTTP. The API edge builds an ``AccessRequest`` (the action, the ARN
it acts on, that resource's tags and the request's tags); ``access.py`` keeps who has
which policy. What a document may say is what slipway can evaluate, and anything else
is refused with the field named, so a policy never silently means less than it reads:

* ``Effect``: ``Allow`` | ``Deny``; ``Action``: a string or a list of
  ``apprunner:<Operation>`` or ``slipway:<Action>``, with ``*`` and ``?`` wildcards,
  each matching at least one known action (``*`` alone: every action);
* ``Resource``: ``*`` or ARNs (``arn:aws:apprunner:...`` / ``arn:aws:slipway:...``)
  with wildcards, whose partition, service, region and account can match this host;
* ``Condition``: ``StringEquals`` / ``StringLike`` on ``aws:ResourceTag/<key>`` and
  ``aws:RequestTag/<key>``; operators and keys are ANDed, a key's values ORed, and a
  key the request lacks does not match (as in IAM).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import botocore.session

from .errors import InvalidRequest

VERSIONS = ("2012-10-17", "2008-10-17")
SERVICES = ("apprunner", "slipway")
OPERATORS = ("StringEquals", "StringLike")
CONDITION_KEYS = ("aws:ResourceTag/", "aws:RequestTag/")
_STATEMENT_KEYS = {"Sid", "Effect", "Action", "Resource", "Condition"}

# slipway's own actions: one per signed route under /slipway/v1 (api/access_routes.py).
SLIPWAY_ACTIONS = frozenset(
    {
        "CreateKey",
        "ListKeys",
        "UpdateKey",
        "DeleteKey",
        "RotateKey",
        "CreatePrincipal",
        "ListPrincipals",
        "AttachPolicy",
        "DetachPolicy",
        "RegistryLogin",
        "AuthorizeConnection",
        "ListRevisions",
        "Rollback",
        "UpdateTraffic",
        "ReadLogs",
        "ReadMetrics",
        "ReadEvents",
        "ReadAudit",
        "ListNodes",
        "AddNotifyTarget",
        "ListNotifyTargets",
        "RemoveNotifyTarget",
        "PutSecret",
        "ListSecrets",
        "DeleteSecret",
        "GrantSecret",
        "RevokeSecret",
    }
)

_READS = ["apprunner:Describe*", "apprunner:List*"]
_SERVICE_READS = ["slipway:ListRevisions", "slipway:ReadLogs", "slipway:ReadEvents"]
READY_MADE: dict[str, dict[str, Any]] = {
    "administrator": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    },
    "deployer": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "apprunner:StartDeployment",
                    "apprunner:PauseService",
                    "apprunner:ResumeService",
                    "slipway:Rollback",
                    "slipway:UpdateTraffic",
                    "slipway:ReadMetrics",
                    *_READS,
                    *_SERVICE_READS,
                ],
                "Resource": "*",
            }
        ],
    },
    "read-only": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [*_READS, *_SERVICE_READS, "slipway:ReadMetrics"],
                "Resource": "*",
            }
        ],
    },
}


@functools.cache
def apprunner_actions() -> frozenset[str]:
    """Every operation of botocore's App Runner model."""
    model = botocore.session.get_session().get_service_model("apprunner")
    return frozenset(model.operation_names)


def known_actions() -> frozenset[str]:
    """Every action a policy can name, ``service:Name``."""
    return frozenset(
        [f"apprunner:{a}" for a in apprunner_actions()] + [f"slipway:{a}" for a in SLIPWAY_ACTIONS]
    )


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """IAM's wildcards: ``*`` any run of characters, ``?`` one character."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(value) is not None


@dataclass(frozen=True)
class Condition:
    operator: str  # StringEquals | StringLike
    key: str  # aws:ResourceTag/<k> | aws:RequestTag/<k>
    values: tuple[str, ...]


@dataclass(frozen=True)
class Statement:
    effect: str  # Allow | Deny
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class AccessRequest:
    """One call to authorize: ``action`` as ``service:Name``, the ARN it acts on (``*``
    when it acts on no single resource, such as a listing), and the tags to match."""

    action: str
    resource: str
    resource_tags: Mapping[str, str] = field(default_factory=dict)
    request_tags: Mapping[str, str] = field(default_factory=dict)


def loads(text: str, *, region: str, account: str) -> Policy:
    """``parse`` of a document given as JSON text."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"PolicyDocument: not valid JSON: {exc}") from exc
    return parse(document, region=region, account=account)


def parse(document: Any, *, region: str, account: str) -> Policy:
    """Check a policy document completely; ``InvalidRequest`` names the first bad field."""
    if not isinstance(document, dict):
        raise InvalidRequest("PolicyDocument: must be a JSON object")
    unknown = set(document) - {"Version", "Id", "Statement"}
    if unknown:
        raise InvalidRequest(f"PolicyDocument.{sorted(unknown)[0]}: not supported")
    version = document.get("Version", VERSIONS[0])
    if version not in VERSIONS:
        raise InvalidRequest(f"PolicyDocument.Version: must be one of {', '.join(VERSIONS)}")
    raw = document.get("Statement")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("PolicyDocument.Statement: required, a statement or a list")
    return Policy(
        tuple(
            _statement(s, f"Statement[{i}]", region=region, account=account)
            for i, s in enumerate(raw)
        )
    )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise InvalidRequest(f"{where}: required, a string or a list of strings")
    return tuple(items)


def _statement(raw: Any, where: str, *, region: str, account: str) -> Statement:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where}: must be a JSON object")
    unknown = set(raw) - _STATEMENT_KEYS
    if unknown:
        raise InvalidRequest(f"{where}.{sorted(unknown)[0]}: not supported")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise InvalidRequest(f"{where}.Effect: must be Allow or Deny")
    actions = _strings(raw.get("Action"), f"{where}.Action")
    for action in actions:
        _check_action(action, f"{where}.Action")
    resources = _strings(raw.get("Resource"), f"{where}.Resource")
    for resource in resources:
        _check_resource(resource, f"{where}.Resource", region=region, account=account)
    conditions = _conditions(raw.get("Condition", {}), f"{where}.Condition")
    return Statement(effect, actions, resources, conditions)


def _check_action(action: str, where: str) -> None:
    if action == "*":
        return
    service, sep, name = action.partition(":")
    if not sep or service.lower() not in SERVICES or not name:
        raise InvalidRequest(
            f"{where}: {action!r} is not an action; use apprunner:<Operation> or slipway:<Action>"
        )
    if not any(glob_match(action, known, ignore_case=True) for known in known_actions()):
        raise InvalidRequest(f"{where}: {action!r} matches no known action")


def _check_resource(resource: str, where: str, *, region: str, account: str) -> None:
    if resource == "*":
        return
    parts = resource.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        raise InvalidRequest(f"{where}: {resource!r} is not * or an ARN (arn:aws:apprunner:...)")
    _, partition, service, arn_region, arn_account, _ = parts
    checks = (
        ("partition", partition, ("aws",)),
        ("service", service, SERVICES),
        ("region", arn_region, (region,)),
        ("account", arn_account, (account,)),
    )
    for what, pattern, values in checks:
        if not any(glob_match(pattern, v) for v in values):
            raise InvalidRequest(
                f"{where}: {resource!r} can never match: its {what} {pattern!r} is not "
                f"{' or '.join(values)}"
            )


def _conditions(raw: Any, where: str) -> tuple[Condition, ...]:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where}: must be a JSON object of operators")
    out = []
    for operator, block in raw.items():
        if operator not in OPERATORS:
            raise InvalidRequest(
                f"{where}.{operator}: unsupported operator; use {' or '.join(OPERATORS)}"
            )
        if not isinstance(block, dict) or not block:
            raise InvalidRequest(f"{where}.{operator}: must map condition keys to values")
        for key, values in block.items():
            if not key.startswith(CONDITION_KEYS) or key.endswith("/"):
                raise InvalidRequest(
                    f"{where}.{operator}.{key}: unsupported condition key; use "
                    "aws:ResourceTag/<key> or aws:RequestTag/<key>"
                )
            out.append(Condition(operator, key, _strings(values, f"{where}.{operator}.{key}")))
    return tuple(out)


def _condition_holds(condition: Condition, request: AccessRequest) -> bool:
    kind, _, tag = condition.key.partition("/")
    tags = request.resource_tags if kind == "aws:ResourceTag" else request.request_tags
    if tag not in tags:
        return False
    value = tags[tag]
    if condition.operator == "StringEquals":
        return value in condition.values
    return any(glob_match(pattern, value) for pattern in condition.values)


def _applies(statement: Statement, request: AccessRequest) -> bool:
    return (
        any(glob_match(a, request.action, ignore_case=True) for a in statement.actions)
        and any(r == "*" or glob_match(r, request.resource) for r in statement.resources)
        and all(_condition_holds(c, request) for c in statement.conditions)
    )


def evaluate(policies: Iterable[Policy], request: AccessRequest) -> str:
    """``"Allow"``, ``"ExplicitDeny"`` or ``"ImplicitDeny"``, as IAM decides."""
    allowed = False
    for policy in policies:
        for statement in policy.statements:
            if _applies(statement, request):
                if statement.effect == "Deny":
                    return "ExplicitDeny"
                allowed = True
    return "Allow" if allowed else "ImplicitDeny"
