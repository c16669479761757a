"""Handlers of the VPC connector and VPC ingress connection operations: read members,
call the rules (``vpc/``), render App Runner's shapes. Registered in ``handlers.py``."""

from __future__ import annotations

from typing import Any, Protocol

from ..services import Services
from .listing import listed, page
from .shapes import _times


class HasServices(Protocol):
    """What these handlers need of ``handlers.Rules``."""

    services: Services


def vpc_connector(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "VpcConnectorName": row["name"],
        "VpcConnectorArn": row["arn"],
        "VpcConnectorRevision": row["revision"],
        "Subnets": list(row["subnets"]),
        "SecurityGroups": list(row["security_groups"]),
        "Status": row["status"],
        **_times(row, CreatedAt="created_at", DeletedAt="deleted_at"),
    }


def vpc_ingress(row: dict[str, Any], account_id: str) -> dict[str, Any]:
    return {
        "VpcIngressConnectionArn": row["arn"],
        "VpcIngressConnectionName": row["name"],
        "ServiceArn": row["service_arn"],
        "Status": row["status"],
        "AccountId": account_id,
        "DomainName": row["domain_name"],
        "IngressVpcConfiguration": {
            "VpcId": row["vpc_id"],
            "VpcEndpointId": row["vpc_endpoint_id"],
        },
        **_times(row, CreatedAt="created_at", DeletedAt="deleted_at"),
    }


def _page(
    rules: HasServices, rows: list[Any], p: dict[str, Any], key: str, listing: str
) -> dict[str, Any]:
    """Through the signed pager, as every List; ``listing`` names what a token pages."""
    shown = page(rules, rows, p, listing)
    return listed(key, shown.items, shown)


def create_vpc_connector(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    return {"VpcConnector": vpc_connector(rules.services.vpc_connectors.create(p))}


def describe_vpc_connector(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    return {"VpcConnector": vpc_connector(rules.services.vpc_connectors.get(p["VpcConnectorArn"]))}


def list_vpc_connectors(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    rows = [vpc_connector(r) for r in rules.services.vpc_connectors.active()]
    return _page(rules, rows, p, "VpcConnectors", "ListVpcConnectors")


def delete_vpc_connector(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    row = rules.services.vpc_connectors.delete(p["VpcConnectorArn"])
    return {"VpcConnector": vpc_connector(row)}


def _ingress_answer(rules: HasServices, row: dict[str, Any]) -> dict[str, Any]:
    return {"VpcIngressConnection": vpc_ingress(row, rules.services.settings.account_id)}


def create_vpc_ingress(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    return _ingress_answer(rules, rules.services.vpc_ingress.create(p))


def describe_vpc_ingress(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    return _ingress_answer(rules, rules.services.vpc_ingress.get(p["VpcIngressConnectionArn"]))


def list_vpc_ingress(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    wanted = p.get("Filter") or {}
    rows = rules.services.vpc_ingress.list(wanted.get("ServiceArn"), wanted.get("VpcEndpointId"))
    summaries = [
        {"VpcIngressConnectionArn": r["arn"], "ServiceArn": r["service_arn"]} for r in rows
    ]
    listing = f"ListVpcIngressConnections {sorted(wanted.items())}"
    return _page(rules, summaries, p, "VpcIngressConnectionSummaryList", listing)


def update_vpc_ingress(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    row = rules.services.vpc_ingress.update(
        p["VpcIngressConnectionArn"], p["IngressVpcConfiguration"]
    )
    return _ingress_answer(rules, row)


def delete_vpc_ingress(rules: HasServices, p: dict[str, Any]) -> dict[str, Any]:
    return _ingress_answer(rules, rules.services.vpc_ingress.delete(p["VpcIngressConnectionArn"]))


VPC_HANDLERS = {
    "CreateVpcConnector": create_vpc_connector,
    "DescribeVpcConnector": describe_vpc_connector,
    "ListVpcConnectors": list_vpc_connectors,
    "DeleteVpcConnector": delete_vpc_connector,
    "CreateVpcIngressConnection": create_vpc_ingress,
    "DescribeVpcIngressConnection": describe_vpc_ingress,
    "ListVpcIngressConnections": list_vpc_ingress,
    "UpdateVpcIngressConnection": update_vpc_ingress,
    "DeleteVpcIngressConnection": delete_vpc_ingress,
}
