"""Queries of App Runner's revisioned configurations: auto scaling and observability
configurations, one table each with the same columns for name, revision and status.

Apart from ``resources.py`` because both kinds are read and written the same way (by
ARN, by name in revision order, the highest revision a name had): one set of queries
serves every such table.
"""

from __future__ import annotations

from typing import Any

from .base import StoreBase

# The tables that hold revisioned configurations, by the kind in their ARNs.
CONFIGURATION_TABLES = {
    "autoscalingconfiguration": "auto_scaling_configurations",
    "observabilityconfiguration": "observability_configurations",
}


class ConfigurationTables(StoreBase):
    """Rows as plain dicts; ``table`` is one of ``CONFIGURATION_TABLES``' values."""

    def insert_configuration(self, table: str, row: dict[str, Any]) -> None:
        self._insert(_checked(table), row)

    def update_configuration(self, table: str, arn: str, **fields: Any) -> None:
        self._update(_checked(table), arn, fields)

    def get_configuration(self, table: str, arn: str) -> dict[str, Any] | None:
        return self._one(f"SELECT * FROM {_checked(table)} WHERE arn = ?", (arn,))

    def list_configurations(self, table: str, name: str | None = None) -> list[dict[str, Any]]:
        """The ACTIVE revisions (of one name), by name then revision."""
        sql = f"SELECT * FROM {_checked(table)} WHERE status = 'ACTIVE'"
        params: tuple = ()
        if name is not None:
            sql += " AND name = ?"
            params = (name,)
        return self._rows(sql + " ORDER BY name, revision", params)

    def max_configuration_revision(self, table: str, name: str) -> int:
        """The highest revision ``name`` ever had, deleted ones included: revisions are
        never handed out twice."""
        row = self._one(
            f"SELECT COALESCE(MAX(revision), 0) AS n FROM {_checked(table)} WHERE name = ?",
            (name,),
        )
        return row["n"]


def _checked(table: str) -> str:
    if table not in CONFIGURATION_TABLES.values():
        raise ValueError(f"{table!r} is not a configuration table")
    return table
