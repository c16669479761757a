"""One handler per App Runner operation: read members, call the rules, render shapes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..domains.rules import Domains
from ..errors import SlipwayError
from ..services import Services, paginate
from . import shapes

Handler = Callable[[Services, dict[str, Any]], dict[str, Any]]


def create_service(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    row, op_id = svc.create_service(p)
    return {"Service": shapes.service(row, svc), "OperationId": op_id}


def describe_service(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    return {"Service": shapes.service(svc.service(p["ServiceArn"]), svc)}


def list_services(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    page = svc.list_services(p.get("MaxResults"), p.get("NextToken"))
    out: dict[str, Any] = {
        "ServiceSummaryList": [shapes.service_summary(r, svc.settings) for r in page.items]
    }
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def update_service(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    row, op_id = svc.update_service(p)
    return {"Service": shapes.service(row, svc), "OperationId": op_id}


def _service_op(method: str) -> Handler:
    def handler(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
        row, op_id = getattr(svc, method)(p["ServiceArn"])
        return {"Service": shapes.service(row, svc), "OperationId": op_id}

    return handler


def start_deployment(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    return {"OperationId": svc.start_deployment(p["ServiceArn"])}


def list_operations(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    page = svc.list_operations(p["ServiceArn"], p.get("MaxResults"), p.get("NextToken"))
    out: dict[str, Any] = {"OperationSummaryList": [shapes.operation(r) for r in page.items]}
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def create_auto_scaling(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    return {"AutoScalingConfiguration": shapes.auto_scaling(svc.create_auto_scaling(p), svc)}


def describe_auto_scaling(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    row = svc.auto_scaling(p["AutoScalingConfigurationArn"])
    return {"AutoScalingConfiguration": shapes.auto_scaling(row, svc)}


def list_auto_scaling(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    rows = svc.list_auto_scaling(p.get("AutoScalingConfigurationName"), p.get("LatestOnly", False))
    page = paginate(rows, p.get("MaxResults"), p.get("NextToken"))
    out: dict[str, Any] = {
        "AutoScalingConfigurationSummaryList": [
            shapes.auto_scaling_summary(r, svc) for r in page.items
        ]
    }
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def delete_auto_scaling(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    row = svc.delete_auto_scaling(
        p["AutoScalingConfigurationArn"], p.get("DeleteAllRevisions", False)
    )
    return {"AutoScalingConfiguration": shapes.auto_scaling(row, svc)}


def update_default_auto_scaling(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    row = svc.update_default_auto_scaling(p["AutoScalingConfigurationArn"])
    return {"AutoScalingConfiguration": shapes.auto_scaling(row, svc)}


def list_services_for_auto_scaling(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    arns = svc.services_for_auto_scaling(p["AutoScalingConfigurationArn"])
    page = paginate(arns, p.get("MaxResults"), p.get("NextToken"))
    out: dict[str, Any] = {"ServiceArnList": list(page.items)}
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def _domains(svc: Services) -> Domains:
    """The agent sets ``services.domains`` at wiring time."""
    domains = svc.domains
    if not isinstance(domains, Domains):
        raise SlipwayError("custom domains are not available in this agent")
    return domains


def _domain_answer(
    domains: Domains, service: dict[str, Any], row: dict[str, Any]
) -> dict[str, Any]:
    target = domains.dns_target(service)
    return {
        "DNSTarget": target,
        "ServiceArn": service["arn"],
        "CustomDomain": shapes.custom_domain(row, target),
        "VpcDNSTargets": [],
    }


def associate_custom_domain(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    domains = _domains(svc)
    service, row = domains.associate(p["ServiceArn"], p["DomainName"], p.get("EnableWWWSubdomain"))
    return _domain_answer(domains, service, row)


def describe_custom_domains(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    domains = _domains(svc)
    service, page = domains.describe(p["ServiceArn"], p.get("MaxResults"), p.get("NextToken"))
    target = domains.dns_target(service)
    out: dict[str, Any] = {
        "DNSTarget": target,
        "ServiceArn": service["arn"],
        "CustomDomains": [shapes.custom_domain(r, target) for r in page.items],
        "VpcDNSTargets": [],
    }
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def disassociate_custom_domain(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    domains = _domains(svc)
    service, row = domains.disassociate(p["ServiceArn"], p["DomainName"])
    return _domain_answer(domains, service, row)


def tag_resource(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    svc.tag_resource(p["ResourceArn"], p["Tags"])
    return {}


def untag_resource(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    svc.untag_resource(p["ResourceArn"], p["TagKeys"])
    return {}


def list_tags(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    tags = svc.list_tags(p["ResourceArn"])
    return {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def create_connection(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    row = svc.connections.create(p["ConnectionName"], p["ProviderType"])
    tags = p.get("Tags") or []
    if tags:
        svc.tag_resource(row["arn"], tags)
    return {"Connection": shapes.connection(row)}


def list_connections(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    rows = svc.connections.list(p.get("ConnectionName"))
    page = paginate(rows, p.get("MaxResults"), p.get("NextToken"))
    out: dict[str, Any] = {"ConnectionSummaryList": [shapes.connection(r) for r in page.items]}
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def delete_connection(svc: Services, p: dict[str, Any]) -> dict[str, Any]:
    return {"Connection": shapes.connection(svc.connections.delete(p["ConnectionArn"]))}


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
}
