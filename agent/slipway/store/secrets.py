"""Queries of secrets and their grants: the sealed value of each named secret, and the
services allowed to read it.

Apart from ``resources.py`` because only ``service_secrets.py`` reads these rows, and
a value crosses here only sealed: this module never sees a secret in clear.
"""

from __future__ import annotations

from typing import Any

from .base import StoreBase


class SecretTables(StoreBase):
    def put_secret(self, name: str, sealed: str, now: float, grants: list[str]) -> bool:
        """Create or replace one secret's value, adding ``grants``; True when it is new."""
        with self.transaction():
            created = self.get_secret(name) is None
            if created:
                self.db["secrets"].insert(
                    {"name": name, "value": sealed, "created_at": now, "updated_at": now}
                )
            else:
                self.db["secrets"].update(name, {"value": sealed, "updated_at": now})
            for service in grants:
                self.grant_secret(name, service, now)
            return created

    def get_secret(self, name: str) -> dict[str, Any] | None:
        """The row, value still sealed, with ``grants``: the service names, sorted."""
        row = self._one("SELECT * FROM secrets WHERE name = ?", (name,))
        if row is not None:
            row["grants"] = self._grants(name)
        return row

    def list_secrets(self) -> list[dict[str, Any]]:
        """Every secret's name, times and grants; never its value, sealed or not."""
        rows = self._rows("SELECT name, created_at, updated_at FROM secrets ORDER BY name")
        for row in rows:
            row["grants"] = self._grants(row["name"])
        return rows

    def _grants(self, name: str) -> list[str]:
        rows = self._rows(
            "SELECT service FROM secret_grants WHERE secret = ? ORDER BY service", (name,)
        )
        return [r["service"] for r in rows]

    def grant_secret(self, name: str, service: str, now: float) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO secret_grants (secret, service, created_at)"
                " VALUES (?, ?, ?)",
                (name, service, now),
            )

    def revoke_secret(self, name: str, service: str) -> bool:
        """True when the grant was there."""
        with self.transaction():
            cursor = self.db.execute(
                "DELETE FROM secret_grants WHERE secret = ? AND service = ?", (name, service)
            )
            return cursor.rowcount > 0

    def delete_secret(self, name: str) -> bool:
        """The secret and its grants; True when it was there."""
        with self.transaction():
            self.db.execute("DELETE FROM secret_grants WHERE secret = ?", (name,))
            return self.db.execute("DELETE FROM secrets WHERE name = ?", (name,)).rowcount > 0
