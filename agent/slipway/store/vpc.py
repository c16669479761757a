"""Queries of VPC connectors and VPC ingress connections (plain dicts; ``subnets`` and
``security_groups`` decoded from JSON)."""

from __future__ import annotations

from typing import Any

from .base import StoreBase


class VpcTables(StoreBase):
    # -- VPC connectors -----------------------------------------------------------

    def insert_vpc_connector(self, row: dict[str, Any]) -> None:
        self._insert("vpc_connectors", row)

    def update_vpc_connector(self, arn: str, **fields: Any) -> None:
        self._update("vpc_connectors", arn, fields)

    def get_vpc_connector(self, arn: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM vpc_connectors WHERE arn = ?", (arn,))

    def list_vpc_connectors(self, name: str | None = None) -> list[dict[str, Any]]:
        """Active connectors (of one name), oldest first."""
        sql = "SELECT * FROM vpc_connectors WHERE status = 'ACTIVE'"
        params: tuple = ()
        if name is not None:
            sql += " AND name = ?"
            params = (name,)
        return self._rows(sql + " ORDER BY created_at, name, revision", params)

    def max_vpc_connector_revision(self, name: str) -> int:
        row = self._one(
            "SELECT COALESCE(MAX(revision), 0) AS n FROM vpc_connectors WHERE name = ?", (name,)
        )
        return row["n"]

    # -- VPC ingress connections ---------------------------------------------------

    def insert_vpc_ingress(self, row: dict[str, Any]) -> None:
        self._insert("vpc_ingress_connections", row)

    def update_vpc_ingress(self, arn: str, **fields: Any) -> None:
        self._update("vpc_ingress_connections", arn, fields)

    def get_vpc_ingress(self, arn: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM vpc_ingress_connections WHERE arn = ?", (arn,))

    def list_vpc_ingress(self) -> list[dict[str, Any]]:
        """Connections not deleted, oldest first."""
        return self._rows(
            "SELECT * FROM vpc_ingress_connections WHERE status != 'DELETED'"
            " ORDER BY created_at, name"
        )
