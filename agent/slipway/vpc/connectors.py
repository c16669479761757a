"""VPC connectors: App Runner's way to reach private resources, mapped to Docker
networks. A connector's ``Subnets`` name existing Docker networks (user-defined
bridges: a database's, a cache's); instances of a service whose egress goes through
the connector join those networks besides their own, so they reach what runs there by
address and by name. ``SecurityGroups`` are checked for form and recorded, not
enforced: Docker networks have no per-group rules (README says so).

Apart from ``services.py`` because connectors are a resource of their own (Create,
Describe, List, Delete); a service only names one. Connectors never change (App Runner
keeps one revision per name), so a service's spec copies the networks when it names
one, and a connector in use cannot be deleted.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from ..config import Settings
from ..errors import InvalidRequest, QuotaExceeded, ResourceNotFound
from ..store import Store
from ..tags import tag_dict
from .network import EGRESS, INGRESS, NetworkConfig

# {network name: why it cannot be joined} for the names given; absent ones included.
NetworkCheck = Callable[[list[str]], dict[str, str]]

# Docker's rule for network names.
_NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")
# An EC2 security group id, the form App Runner takes.
_SECURITY_GROUP = re.compile(r"sg-(?:[0-9a-f]{8}|[0-9a-f]{17})")


def check_members(subnets: list[str], security_groups: list[str]) -> None:
    """The form of CreateVpcConnector's lists, each problem named."""
    if not subnets:
        raise InvalidRequest("Subnets: name at least one Docker network")
    for field_name, values, pattern, form in (
        ("Subnets", subnets, _NETWORK_NAME, "a Docker network name"),
        ("SecurityGroups", security_groups, _SECURITY_GROUP, "a security group id (sg-0123abcd)"),
    ):
        for i, value in enumerate(values):
            if not pattern.fullmatch(value):
                raise InvalidRequest(f"{field_name}[{i}]: {value!r} is not {form}")
        if len(set(values)) != len(values):
            raise InvalidRequest(f"{field_name}: {values} names one more than once")


class VpcConnectors:
    """The rules of the VPC connector calls; rows are plain dicts from the store."""

    def __init__(
        self, store: Store, settings: Settings, network_check: NetworkCheck | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        # None: no container engine to ask (unit tests of other rules): every name unknown.
        self.network_check = network_check or (lambda names: dict.fromkeys(names, "not found"))

    def _arn(self, name: str, revision: int) -> str:
        s = self.settings
        return (
            f"arn:aws:apprunner:{s.region}:{s.account_id}:vpcconnector/{name}/{revision}"
            f"/{uuid.uuid4().hex}"
        )

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["VpcConnectorName"]
        subnets = list(params["Subnets"])
        groups = list(params.get("SecurityGroups") or [])
        check_members(subnets, groups)
        tags = tag_dict(params.get("Tags") or [])
        problems = self.network_check(subnets)
        if problems:
            network, why = next(iter(problems.items()))
            raise InvalidRequest(f"Subnets: Docker network {network!r} {why}")
        with self.store.transaction():
            active = self.store.list_vpc_connectors()
            if any(r["name"] == name for r in active):
                raise InvalidRequest(
                    f"VPC connector {name} already exists; App Runner keeps one revision per name"
                )
            quota = self.settings.vpc_limits.connector_quota
            if len(active) >= quota:
                raise QuotaExceeded(
                    f"You have reached the maximum of {quota} VPC connectors (vpc_connector_quota)"
                )
            revision = self.store.max_vpc_connector_revision(name) + 1
            arn = self._arn(name, revision)
            self.store.insert_vpc_connector(
                {
                    "arn": arn,
                    "name": name,
                    "revision": revision,
                    "status": "ACTIVE",
                    "subnets": subnets,
                    "security_groups": groups,
                    "created_at": time.time(),
                }
            )
            if tags:
                self.store.put_tags(arn, tags)
        return self.store.get_vpc_connector(arn)

    def get(self, arn: str) -> dict[str, Any]:
        """A connector by ARN, deleted ones too (INACTIVE, as App Runner shows them)."""
        row = self.store.get_vpc_connector(arn)
        if row is None:
            raise ResourceNotFound(f"VPC connector {arn} not found")
        return row

    def active(self) -> list[dict[str, Any]]:
        return self.store.list_vpc_connectors()

    def users(self, arn: str) -> list[str]:
        """The names of the services (not deleted) whose egress goes through ``arn``, or
        will once an update queued or under way is done."""
        services = self.store.list_services()
        names = {s.id: s.name for s in services}
        using = {s.id for s in services if s.spec.network.vpc_connector_arn == arn}
        for op in self.store.operations_with_status("PENDING", "IN_PROGRESS"):
            spec = (op.params or {}).get("spec") or {}
            if (spec.get("network") or {}).get("vpc_connector_arn") == arn:
                using.add(op.service_id)
        return sorted(names[i] for i in using if i in names)

    def delete(self, arn: str) -> dict[str, Any]:
        row = self.get(arn)
        if row["status"] != "ACTIVE":
            raise ResourceNotFound(f"VPC connector {arn} is already deleted")
        with self.store.transaction():
            users = self.users(arn)
            if users:
                raise InvalidRequest(
                    f"VPC connector {row['name']} is used by service(s) {', '.join(users)};"
                    " you can't delete a connector that's used by one or more services"
                )
            self.store.update_vpc_connector(arn, status="INACTIVE", deleted_at=time.time())
            self.store.remove_tags(arn)
        return self.store.get_vpc_connector(arn)

    def resolve(self, network: NetworkConfig) -> NetworkConfig:
        """``network`` with its connector's Docker networks filled in, after the checks a
        service's NetworkConfiguration needs: the connector is active, and a private
        service has a private listener to answer on."""
        if network.egress_type == "VPC":
            row = self.store.get_vpc_connector(network.vpc_connector_arn or "")
            if row is None or row["status"] != "ACTIVE":
                raise InvalidRequest(
                    f"{EGRESS}.VpcConnectorArn: no active VPC connector {network.vpc_connector_arn}"
                )
            network.networks = list(row["subnets"])
        if not network.publicly_accessible and not self.settings.vpc_limits.private_listen:
            raise InvalidRequest(
                f"{INGRESS}: a private service needs a private listener, and this host has"
                " none: set private_listen (an address:port for Caddy to serve private"
                " services on)"
            )
        return network
