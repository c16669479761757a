"""Store rows rendered as App Runner response shapes (PascalCase, epoch-second times)."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..errors import ResourceNotFound
from ..records import Operation, Service
from ..services import Services


def _times(row: dict[str, Any] | Service | Operation, **names: str) -> dict[str, float]:
    """The times a row or record has, by their API names."""
    get = row.get if isinstance(row, dict) else lambda col: getattr(row, col)
    return {api: get(col) for api, col in names.items() if get(col) is not None}


def service(row: Service, services: Services) -> dict[str, Any]:
    spec = row.spec
    out: dict[str, Any] = {
        **service_summary(row, services.settings),
        "SourceConfiguration": spec.source.to_api(),
        "InstanceConfiguration": spec.instance.to_api(),
        "HealthCheckConfiguration": spec.health.to_api(),
        "NetworkConfiguration": spec.network.to_api(),
        "ObservabilityConfiguration": spec.observability_api(),
    }
    try:
        asc = services.auto_scaling_for(spec)
    except ResourceNotFound:  # a configuration deleted since still renders the service
        return out
    out["AutoScalingConfigurationSummary"] = auto_scaling_summary(asc, services)
    return out


def service_summary(row: Service, settings: Settings) -> dict[str, Any]:
    return {
        "ServiceName": row.name,
        "ServiceId": row.id,
        "ServiceArn": row.arn,
        "ServiceUrl": settings.service_url(row.hostname),
        "Status": row.status,
        **_times(row, CreatedAt="created_at", UpdatedAt="updated_at", DeletedAt="deleted_at"),
    }


def operation(row: Operation) -> dict[str, Any]:
    return {
        "Id": row.id,
        "Type": row.type,
        "Status": row.status,
        "TargetArn": row.target_arn,
        **_times(row, StartedAt="created_at", EndedAt="ended_at", UpdatedAt="updated_at"),
    }


def auto_scaling_summary(row: dict[str, Any], services: Services) -> dict[str, Any]:
    return {
        "AutoScalingConfigurationArn": row["arn"],
        "AutoScalingConfigurationName": row["name"],
        "AutoScalingConfigurationRevision": row["revision"],
        "Status": row["status"],
        "HasAssociatedService": services.has_associated_service(row),
        "IsDefault": bool(row["is_default"]),
        **_times(row, CreatedAt="created_at"),
    }


def auto_scaling(row: dict[str, Any], services: Services) -> dict[str, Any]:
    return {
        **auto_scaling_summary(row, services),
        "Latest": row["status"] == "ACTIVE" and services.is_latest(row),
        "MaxConcurrency": row["max_concurrency"],
        "MinSize": row["min_size"],
        "MaxSize": row["max_size"],
        **_times(row, DeletedAt="deleted_at"),
    }


def connection(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "ConnectionName": row["name"],
        "ConnectionArn": row["arn"],
        "ProviderType": row["provider"],
        "Status": row["status"],
        **_times(row, CreatedAt="created_at"),
    }


def custom_domain(row: dict[str, Any], dns_target: str) -> dict[str, Any]:
    """What to put in DNS for each name: a CNAME to the service's default host (an A or
    AAAA record to this host's address does as well), with its validation status."""
    validation = row["validation"] or {}
    return {
        "DomainName": row["domain_name"],
        "EnableWWWSubdomain": bool(row["enable_www"]),
        "CertificateValidationRecords": [
            {"Name": name, "Type": "CNAME", "Value": dns_target, "Status": status}
            for name, status in validation.items()
        ],
        "Status": row["status"],
    }
