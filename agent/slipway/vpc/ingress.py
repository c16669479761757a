"""VPC ingress connections: where a private service answers. App Runner reaches a
private service (IsPubliclyAccessible false) only through a VPC endpoint; on one host
the VPC is the private listener (``private_listen``), where Caddy serves private
services and nothing else, while the public listener answers 404 for them as for an
unknown host. A connection reports the name the service answers at there
(``DomainName``: the service's host) and records ``IngressVpcConfiguration`` as given.

A connection is AVAILABLE as soon as it is made: the private listener serves the
service's route already, so there is nothing to wait for.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..config import Settings
from ..errors import InvalidRequest, InvalidState, QuotaExceeded, ResourceNotFound
from ..records import Service
from ..store import Store
from ..tags import tag_dict

# The states App Runner lets an update or a deletion start from.
CHANGEABLE = ("AVAILABLE", "FAILED_CREATION", "FAILED_UPDATE")
DELETABLE = (*CHANGEABLE, "FAILED_DELETION")


def vpc_configuration(data: dict[str, Any]) -> tuple[str, str]:
    """(VpcId, VpcEndpointId) of a request's IngressVpcConfiguration, both required."""
    values = []
    for member in ("VpcId", "VpcEndpointId"):
        value = (data.get(member) or "").strip()
        if not value:
            raise InvalidRequest(f"IngressVpcConfiguration.{member}: required")
        values.append(value)
    return values[0], values[1]


class VpcIngressConnections:
    """The rules of the VPC ingress connection calls; rows are plain dicts."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def _service(self, arn: str) -> Service:
        service = self.store.service_by_arn(arn)
        if service is None:
            raise InvalidRequest(f"ServiceArn: service {arn} not found")
        if service.status == "DELETED":
            raise InvalidState(f"Service {service.name} is deleted")
        return service

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["VpcIngressConnectionName"]
        vpc_id, endpoint = vpc_configuration(params["IngressVpcConfiguration"])
        tags = tag_dict(params.get("Tags") or [])
        limits = self.settings.vpc_limits
        if not limits.private_listen:
            raise InvalidRequest(
                "VPC ingress connections need a private listener, and this host has none:"
                " set private_listen (an address:port for Caddy to serve private services on)"
            )
        service = self._service(params["ServiceArn"])
        arn = (
            f"arn:aws:apprunner:{self.settings.region}:{self.settings.account_id}"
            f":vpcingressconnection/{name}/{uuid.uuid4().hex}"
        )
        with self.store.transaction():
            live = self.active()
            if any(r["name"] == name for r in live):
                raise InvalidRequest(f"VPC ingress connection {name} already exists")
            taken = [r["name"] for r in live if r["service_arn"] == service.arn]
            if taken:
                raise InvalidRequest(
                    f"ServiceArn: service {service.name} already has VPC ingress connection"
                    f" {taken[0]}; a service has one"
                )
            if len(live) >= limits.ingress_quota:
                raise QuotaExceeded(
                    f"You have reached the maximum of {limits.ingress_quota} VPC ingress"
                    " connections (vpc_ingress_quota)"
                )
            self.store.insert_vpc_ingress(
                {
                    "arn": arn,
                    "name": name,
                    "service_arn": service.arn,
                    "status": "AVAILABLE",
                    "vpc_id": vpc_id,
                    "vpc_endpoint_id": endpoint,
                    "domain_name": self.settings.service_host(service.hostname),
                    "created_at": time.time(),
                }
            )
            if tags:
                self.store.put_tags(arn, tags)
        return self.store.get_vpc_ingress(arn)

    def _settled(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row``, DELETED if its service was deleted meanwhile (it goes with it)."""
        if row["status"] == "DELETED":
            return row
        service = self.store.service_by_arn(row["service_arn"])
        if service is None or service.status == "DELETED":
            self.store.update_vpc_ingress(row["arn"], status="DELETED", deleted_at=time.time())
            self.store.remove_tags(row["arn"])
            return self.store.get_vpc_ingress(row["arn"])
        return row

    def get(self, arn: str) -> dict[str, Any]:
        row = self.store.get_vpc_ingress(arn)
        if row is None:
            raise ResourceNotFound(f"VPC ingress connection {arn} not found")
        return self._settled(row)

    def active(self) -> list[dict[str, Any]]:
        rows = map(self._settled, self.store.list_vpc_ingress())
        return [r for r in rows if r["status"] != "DELETED"]

    def list(self, service_arn: str | None, endpoint: str | None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.active()
            if (service_arn is None or r["service_arn"] == service_arn)
            and (endpoint is None or r["vpc_endpoint_id"] == endpoint)
        ]

    def _changeable(self, arn: str, states: tuple[str, ...], action: str) -> dict[str, Any]:
        row = self.get(arn)
        if row["status"] not in states:
            raise InvalidState(
                f"VPC ingress connection {row['name']} is {row['status']}; it can be"
                f" {action} only when {', '.join(states)}"
            )
        return row

    def update(self, arn: str, configuration: dict[str, Any]) -> dict[str, Any]:
        vpc_id, endpoint = vpc_configuration(configuration)
        row = self._changeable(arn, CHANGEABLE, "updated")
        self.store.update_vpc_ingress(row["arn"], vpc_id=vpc_id, vpc_endpoint_id=endpoint)
        return self.store.get_vpc_ingress(row["arn"])

    def delete(self, arn: str) -> dict[str, Any]:
        row = self._changeable(arn, DELETABLE, "deleted")
        with self.store.transaction():
            self.store.update_vpc_ingress(row["arn"], status="DELETED", deleted_at=time.time())
            self.store.remove_tags(row["arn"])
        return self.store.get_vpc_ingress(row["arn"])

    def taggable(self, arn: str) -> bool:
        row = self.store.get_vpc_ingress(arn)
        return row is not None and self._settled(row)["status"] != "DELETED"
