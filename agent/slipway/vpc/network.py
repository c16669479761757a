"""A service's NetworkConfiguration as a record: egress through a VPC connector (its
Docker networks, copied from the connector when the service names it: a connector
never changes), and whether the service is public or private.

PascalCase lives in ``from_api`` and ``to_api`` only, as in ``models.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest

EGRESS = "NetworkConfiguration.EgressConfiguration"
INGRESS = "NetworkConfiguration.IngressConfiguration.IsPubliclyAccessible"


@dataclass
class NetworkConfig:
    egress_type: str = "DEFAULT"  # or "VPC"
    vpc_connector_arn: str | None = None
    networks: list[str] = field(default_factory=list)  # the connector's Subnets
    publicly_accessible: bool = True

    @classmethod
    def from_api(
        cls, data: dict[str, Any] | None, current: NetworkConfig | None = None
    ) -> NetworkConfig:
        """The configuration a request asks for; members it leaves out keep ``current``
        (UpdateService) or App Runner's defaults. Whether the connector exists is the
        rules' question (``connectors.VpcConnectors.resolve``)."""
        data = data or {}
        base = current or cls()
        out = cls(
            base.egress_type, base.vpc_connector_arn, list(base.networks), base.publicly_accessible
        )
        if "EgressConfiguration" in data:
            egress = data["EgressConfiguration"] or {}
            out.egress_type = egress.get("EgressType", "DEFAULT")
            out.vpc_connector_arn = egress.get("VpcConnectorArn")
            out.networks = []
            if out.egress_type == "VPC" and not out.vpc_connector_arn:
                raise InvalidRequest(f"{EGRESS}.VpcConnectorArn: required when EgressType is VPC")
            if out.egress_type != "VPC" and out.vpc_connector_arn:
                raise InvalidRequest(
                    f"{EGRESS}.VpcConnectorArn: only valid when EgressType is VPC,"
                    f" not {out.egress_type}"
                )
        ingress = data.get("IngressConfiguration") or {}
        if "IsPubliclyAccessible" in ingress:
            out.publicly_accessible = bool(ingress["IsPubliclyAccessible"])
        if data.get("IpAddressType", "IPV4") != "IPV4":
            raise InvalidRequest(
                "NetworkConfiguration.IpAddressType: only IPV4 is supported by slipway"
            )
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> NetworkConfig:
        """From the store; specs written before VPC connectors have none."""
        if not data:
            return cls()
        return cls(**{**data, "networks": list(data.get("networks") or [])})

    def to_api(self) -> dict[str, Any]:
        egress: dict[str, Any] = {"EgressType": self.egress_type}
        if self.vpc_connector_arn:
            egress["VpcConnectorArn"] = self.vpc_connector_arn
        return {
            "EgressConfiguration": egress,
            "IngressConfiguration": {"IsPubliclyAccessible": self.publicly_accessible},
            "IpAddressType": "IPV4",
        }
