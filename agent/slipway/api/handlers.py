"""One handler per App Runner operation: read members, call the rules, render shapes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..connections import Connections
from ..domains.rules import Domains
from ..services import Services
from . import observability, shapes
from .listing import listed as _listed
from .listing import page as _page
from .vpc import VPC_HANDLERS


@dataclass(frozen=True)
class Rules:
    """What the handlers call: the rules of services, custom domains and connections."""

    services: Services
    domains: Domains
    connections: Connections


Handler = Callable[[Rules, dict[str, Any]], dict[str, Any]]


def create_service(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    row, op_id = rules.services.create_service(p)
    return {"Service": shapes.service(row, rules.services), "OperationId": op_id}


def describe_service(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    return {"Service": shapes.service(rules.services.service(p["ServiceArn"]), rules.services)}


def list_services(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    page = rules.services.list_services(p.get("MaxResults"), p.get("NextToken"))
    summaries = [shapes.service_summary(r, rules.services.settings) for r in page.items]
    return _listed("ServiceSummaryList", summaries, page)


def update_service(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    row, op_id = rules.services.update_service(p)
    return {"Service": shapes.service(row, rules.services), "OperationId": op_id}


def _service_op(method: str) -> Handler:
    def handler(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
        row, op_id = getattr(rules.services, method)(p["ServiceArn"])
        return {"Service": shapes.service(row, rules.services), "OperationId": op_id}

    return handler


def start_deployment(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    return {"OperationId": rules.services.start_deployment(p["ServiceArn"])}


def list_operations(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    page = rules.services.list_operations(p["ServiceArn"], p.get("MaxResults"), p.get("NextToken"))
    return _listed("OperationSummaryList", [shapes.operation(r) for r in page.items], page)


def create_auto_scaling(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "AutoScalingConfiguration": shapes.auto_scaling(
            rules.services.create_auto_scaling(p), rules.services
        )
    }


def describe_auto_scaling(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    row = rules.services.auto_scaling(p["AutoScalingConfigurationArn"])
    return {"AutoScalingConfiguration": shapes.auto_scaling(row, rules.services)}


def list_auto_scaling(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    name, latest = p.get("AutoScalingConfigurationName"), p.get("LatestOnly", False)
    rows = rules.services.list_auto_scaling(name, latest)
    page = _page(rules, rows, p, f"ListAutoScalingConfigurations {name} {latest}")
    summaries = [shapes.auto_scaling_summary(r, rules.services) for r in page.items]
    return _listed("AutoScalingConfigurationSummaryList", summaries, page)


def delete_auto_scaling(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    row = rules.services.delete_auto_scaling(
        p["AutoScalingConfigurationArn"], p.get("DeleteAllRevisions", False)
    )
    return {"AutoScalingConfiguration": shapes.auto_scaling(row, rules.services)}


def update_default_auto_scaling(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    row = rules.services.update_default_auto_scaling(p["AutoScalingConfigurationArn"])
    return {"AutoScalingConfiguration": shapes.auto_scaling(row, rules.services)}


def list_services_for_auto_scaling(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    arn = p["AutoScalingConfigurationArn"]
    arns = rules.services.services_for_auto_scaling(arn)
    page = _page(rules, arns, p, f"ListServicesForAutoScalingConfiguration {arn}")
    return _listed("ServiceArnList", page.items, page)


def _domain_answer(
    domains: Domains, service: dict[str, Any], row: dict[str, Any]
) -> dict[str, Any]:
    target = domains.dns_target(service)
    return {
        "DNSTarget": target,
        "ServiceArn": service.arn,
        "CustomDomain": shapes.custom_domain(row, target),
        "VpcDNSTargets": [],
    }


def associate_custom_domain(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    domains = rules.domains
    service, row = domains.associate(p["ServiceArn"], p["DomainName"], p.get("EnableWWWSubdomain"))
    return _domain_answer(domains, service, row)


def describe_custom_domains(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    domains = rules.domains
    service, page = domains.describe(p["ServiceArn"], p.get("MaxResults"), p.get("NextToken"))
    target = domains.dns_target(service)
    out: dict[str, Any] = {
        "DNSTarget": target,
        "ServiceArn": service.arn,
        "CustomDomains": [shapes.custom_domain(r, target) for r in page.items],
        "VpcDNSTargets": [],
    }
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def disassociate_custom_domain(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    domains = rules.domains
    service, row = domains.disassociate(p["ServiceArn"], p["DomainName"])
    return _domain_answer(domains, service, row)


def tag_resource(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    rules.services.tag_resource(p["ResourceArn"], p["Tags"])
    return {}


def untag_resource(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    rules.services.untag_resource(p["ResourceArn"], p["TagKeys"])
    return {}


def list_tags(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    tags = rules.services.list_tags(p["ResourceArn"])
    return {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def create_connection(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    row = rules.connections.create(p["ConnectionName"], p["ProviderType"], p.get("Tags"))
    return {"Connection": shapes.connection(row)}


def list_connections(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    name = p.get("ConnectionName")
    page = _page(rules, rules.connections.list(name), p, f"ListConnections {name}")
    return _listed("ConnectionSummaryList", [shapes.connection(r) for r in page.items], page)


def delete_connection(rules: Rules, p: dict[str, Any]) -> dict[str, Any]:
    return {"Connection": shapes.connection(rules.connections.delete(p["ConnectionArn"]))}


HANDLERS: dict[str, Handler] = {
    "CreateConnection": create_connection,
    "ListConnections": list_connections,
    "DeleteConnection": delete_connection,
    "CreateService": create_service,
    "DescribeService": describe_service,
    "ListServices": list_services,
    "UpdateService": update_service,
    "DeleteService": _service_op("delete_service"),
    "PauseService": _service_op("pause_service"),
    "ResumeService": _service_op("resume_service"),
    "StartDeployment": start_deployment,
    "ListOperations": list_operations,
    "CreateAutoScalingConfiguration": create_auto_scaling,
    "DescribeAutoScalingConfiguration": describe_auto_scaling,
    "ListAutoScalingConfigurations": list_auto_scaling,
    "DeleteAutoScalingConfiguration": delete_auto_scaling,
    "UpdateDefaultAutoScalingConfiguration": update_default_auto_scaling,
    "ListServicesForAutoScalingConfiguration": list_services_for_auto_scaling,
    "AssociateCustomDomain": associate_custom_domain,
    "DescribeCustomDomains": describe_custom_domains,
    "DisassociateCustomDomain": disassociate_custom_domain,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags,
    **observability.HANDLERS,
    **VPC_HANDLERS,
}
