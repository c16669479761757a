"""The observability configuration operations: one handler each (read members, call
the rules in ``observability.py``, render the shapes), registered in ``handlers.py``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..observability import ObservabilityConfigurations
from ..services import Services
from .listing import listed, page


class HasServices(Protocol):
    """What these handlers need of ``handlers.Rules``."""

    services: Services


def _configs(rules: HasServices) -> ObservabilityConfigurations:
    return rules.services.observability_configs


def summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "ObservabilityConfigurationArn": row["arn"],
        "ObservabilityConfigurationName": row["name"],
        "ObservabilityConfigurationRevision": row["revision"],
    }


def configuration(row: dict[str, Any], configs: ObservabilityConfigurations) -> dict[str, Any]:
    out: dict[str, Any] = {
        **summary(row),
        "Latest": row["status"] == "ACTIVE" and configs.is_latest(row),
        "Status": row["status"],
        "CreatedAt": row["created_at"],
    }
    if row["trace_vendor"]:
        out["TraceConfiguration"] = {"Vendor": row["trace_vendor"]}
    if row["deleted_at"] is not None:
        out["DeletedAt"] = row["deleted_at"]
    return out


def create(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    configs = _configs(rules)
    return {"ObservabilityConfiguration": configuration(configs.create(p), configs)}


def describe(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    configs = _configs(rules)
    row = configs.get(p["ObservabilityConfigurationArn"])
    return {"ObservabilityConfiguration": configuration(row, configs)}


def list_configurations(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    # LatestOnly defaults to true here (the model says so), unlike auto scaling's.
    name, latest = p.get("ObservabilityConfigurationName"), p.get("LatestOnly", True)
    rows = _configs(rules).active(name, latest)
    shown = page(rules, rows, p, f"ListObservabilityConfigurations {name} {latest}")
    items = [summary(r) for r in shown.items]
    return listed("ObservabilityConfigurationSummaryList", items, shown)


def delete(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    configs = _configs(rules)
    row = configs.delete(p["ObservabilityConfigurationArn"])
    return {"ObservabilityConfiguration": configuration(row, configs)}


HANDLERS: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "CreateObservabilityConfiguration": create,
    "DescribeObservabilityConfiguration": describe,
    "ListObservabilityConfigurations": list_configurations,
    "DeleteObservabilityConfiguration": delete,
}
