"""What each call asks to do, as ``policies.AccessRequest``: the action, the ARN it acts
on, that resource's tags and the tags the request brings.

App Runner operations are read from their parameters (after validation), slipway's own
routes from ``ROUTES``, keyed by method and path template: a signed route missing from
the table is denied (``tests/unit/test_authz.py`` checks every one is there).

Resources of slipway's own routes that are not services are named
``arn:aws:slipway:<region>:<account>:<kind>/<name>`` (``key/SLWY...``,
``principal/deployer``, ``secret/db-password``, ``registry/HOST``...), so a policy
can scope them like any ARN.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..policies import AccessRequest

TagsOf = Callable[[str], Mapping[str, str]]

# App Runner members that name the resource an operation acts on, in order of preference.
ARN_MEMBERS = (
    "ServiceArn",
    "AutoScalingConfigurationArn",
    "ConnectionArn",
    "ObservabilityConfigurationArn",
    "VpcConnectorArn",
    "VpcIngressConnectionArn",
    "ResourceArn",
)
# Create* operations: the ARN the new resource will have, up to its id.
CREATED = {
    "CreateService": ("service", "ServiceName"),
    "CreateAutoScalingConfiguration": ("autoscalingconfiguration", "AutoScalingConfigurationName"),
    "CreateConnection": ("connection", "ConnectionName"),
    "CreateObservabilityConfiguration": (
        "observabilityconfiguration",
        "ObservabilityConfigurationName",
    ),
    "CreateVpcConnector": ("vpcconnector", "VpcConnectorName"),
    "CreateVpcIngressConnection": ("vpcingressconnection", "VpcIngressConnectionName"),
}


@dataclass(frozen=True)
class Route:
    """A slipway route's action and resource: ``kind`` "service" for the service named
    by ``ServiceArn`` (query or body), else ``kind/<name>`` where ``name`` is the path
    parameter, query or body member that names it (``*`` without one)."""

    action: str
    kind: str
    name: str = ""


V1 = "/slipway/v1"
ROUTES: dict[tuple[str, str], Route] = {
    ("GET", f"{V1}/keys"): Route("slipway:ListKeys", "key"),
    ("POST", f"{V1}/keys"): Route("slipway:CreateKey", "principal", "Principal"),
    ("PUT", f"{V1}/keys/{{key_id}}/status"): Route("slipway:UpdateKey", "key", "key_id"),
    ("POST", f"{V1}/keys/{{key_id}}/rotate"): Route("slipway:RotateKey", "key", "key_id"),
    ("DELETE", f"{V1}/keys/{{key_id}}"): Route("slipway:DeleteKey", "key", "key_id"),
    ("GET", f"{V1}/principals"): Route("slipway:ListPrincipals", "principal"),
    ("POST", f"{V1}/principals"): Route("slipway:CreatePrincipal", "principal", "Principal"),
    ("PUT", f"{V1}/principals/{{principal}}/policies/{{policy}}"): Route(
        "slipway:AttachPolicy", "principal", "principal"
    ),
    ("DELETE", f"{V1}/principals/{{principal}}/policies/{{policy}}"): Route(
        "slipway:DetachPolicy", "principal", "principal"
    ),
    ("PUT", f"{V1}/registries/{{host}}"): Route("slipway:RegistryLogin", "registry", "host"),
    ("POST", f"{V1}/connections/{{name}}/authorize"): Route(
        "slipway:AuthorizeConnection", "connection", "name"
    ),
    ("GET", f"{V1}/revisions"): Route("slipway:ListRevisions", "service"),
    ("POST", f"{V1}/rollback"): Route("slipway:Rollback", "service"),
    ("GET", f"{V1}/traffic"): Route("slipway:ListRevisions", "service"),
    ("PUT", f"{V1}/traffic"): Route("slipway:UpdateTraffic", "service"),
    ("PUT", f"{V1}/revision-tags"): Route("slipway:UpdateTraffic", "service"),
    ("DELETE", f"{V1}/revision-tags"): Route("slipway:UpdateTraffic", "service"),
    ("GET", f"{V1}/logs"): Route("slipway:ReadLogs", "service"),
    ("GET", f"{V1}/events"): Route("slipway:ReadEvents", "service"),
    ("GET", f"{V1}/metrics"): Route("slipway:ReadMetrics", "metrics", "Service"),
    ("GET", f"{V1}/idle"): Route("slipway:ReadMetrics", "metrics", "Service"),
    ("GET", f"{V1}/audit"): Route("slipway:ReadAudit", "audit"),
    ("GET", f"{V1}/nodes"): Route("slipway:ListNodes", "node"),
    ("POST", f"{V1}/notify"): Route("slipway:AddNotifyTarget", "notify-target"),
    ("GET", f"{V1}/notify"): Route("slipway:ListNotifyTargets", "notify-target"),
    ("DELETE", f"{V1}/notify/{{target_id}}"): Route(
        "slipway:RemoveNotifyTarget", "notify-target", "target_id"
    ),
    ("POST", f"{V1}/console/links"): Route("slipway:CreateConsoleLink", "key"),
    ("PUT", f"{V1}/secrets"): Route("slipway:PutSecret", "secret", "Name"),
    ("GET", f"{V1}/secrets"): Route("slipway:ListSecrets", "secret"),
    ("DELETE", f"{V1}/secrets"): Route("slipway:DeleteSecret", "secret", "Name"),
    ("PUT", f"{V1}/secrets/grants"): Route("slipway:GrantSecret", "secret", "Name"),
    ("DELETE", f"{V1}/secrets/grants"): Route("slipway:RevokeSecret", "secret", "Name"),
}


def _request_tags(params: Mapping[str, Any]) -> dict[str, str]:
    tags = params.get("Tags")
    if not isinstance(tags, list):
        return {}
    return {
        str(t["Key"]): str(t.get("Value", "")) for t in tags if isinstance(t, dict) and "Key" in t
    }


def operation_request(
    operation: str, params: Mapping[str, Any], *, region: str, account: str, tags_of: TagsOf
) -> AccessRequest:
    """An App Runner call, its parameters already validated against the model."""
    action = f"apprunner:{operation}"
    request_tags = _request_tags(params)
    for member in ARN_MEMBERS:
        arn = params.get(member)
        if isinstance(arn, str) and arn:
            return AccessRequest(action, arn, dict(tags_of(arn)), request_tags)
    if operation in CREATED:
        kind, member = CREATED[operation]
        arn = f"arn:aws:apprunner:{region}:{account}:{kind}/{params.get(member, '')}/*"
        return AccessRequest(action, arn, {}, request_tags)
    return AccessRequest(action, "*", {}, request_tags)


def _body(body: bytes) -> Mapping[str, Any]:
    try:
        decoded = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return {}  # the handler refuses it; the call is judged as naming nothing
    return decoded if isinstance(decoded, dict) else {}


def route_request(
    route: Route,
    path_params: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
    *,
    region: str,
    account: str,
    tags_of: TagsOf,
) -> AccessRequest:
    """A call to one of slipway's own routes."""
    params = _body(body)

    def member(name: str) -> str:
        value = path_params.get(name) or query.get(name) or params.get(name)
        return value if isinstance(value, str) and value else ""

    if route.kind == "service":
        arn = member("ServiceArn")
        return AccessRequest(route.action, arn or "*", dict(tags_of(arn)) if arn else {})
    name = (member(route.name) if route.name else "") or "*"
    return AccessRequest(route.action, f"arn:aws:slipway:{region}:{account}:{route.kind}/{name}")
