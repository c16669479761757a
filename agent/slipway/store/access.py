"""Queries of principals, their policies and their access keys.

Apart from ``resources.py`` because only ``access.py`` reads these rows; a key's secret
crosses here only sealed.
"""

from __future__ import annotations

from typing import Any

from .base import StoreBase


class AccessTables(StoreBase):
    def insert_access_key(self, row: dict[str, Any]) -> None:
        self._insert("access_keys", row)

    def get_access_key(self, key_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM access_keys WHERE id = ?", (key_id,))

    def count_access_keys(self) -> int:
        return self._one("SELECT COUNT(*) AS n FROM access_keys")["n"]

    def list_access_keys(self, principal: str | None = None) -> list[dict[str, Any]]:
        """Every key (or a principal's), oldest first, secrets left out."""
        sql = (
            "SELECT id, principal, status, description, created_at, expires_at, last_used_at"
            " FROM access_keys"
        )
        if principal is None:
            return self._rows(sql + " ORDER BY created_at, id")
        return self._rows(sql + " WHERE principal = ? ORDER BY created_at, id", (principal,))

    def update_access_key(self, key_id: str, **fields: Any) -> None:
        self._update("access_keys", key_id, fields)

    def delete_access_key(self, key_id: str) -> bool:
        """True when the key was there."""
        with self.transaction():
            cursor = self.db.execute("DELETE FROM access_keys WHERE id = ?", (key_id,))
            return cursor.rowcount > 0

    def insert_principal(self, name: str, now: float) -> None:
        self._insert("principals", {"name": name, "created_at": now})

    def get_principal(self, name: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM principals WHERE name = ?", (name,))

    def list_principals(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM principals ORDER BY name")

    def principal_policies(self, principal: str) -> list[dict[str, Any]]:
        """The policies attached to ``principal``, each with its decoded ``document``."""
        return self._rows(
            "SELECT * FROM principal_policies WHERE principal = ? ORDER BY name", (principal,)
        )

    def put_principal_policy(self, principal: str, name: str, document: Any, now: float) -> None:
        """Attach a policy, or replace the one of the same name."""
        with self.transaction():
            self.db["principal_policies"].upsert(
                self.encode_row(
                    {"principal": principal, "name": name, "document": document, "attached_at": now}
                ),
                pk=("principal", "name"),
            )

    def delete_principal_policy(self, principal: str, name: str) -> bool:
        with self.transaction():
            cursor = self.db.execute(
                "DELETE FROM principal_policies WHERE principal = ? AND name = ?",
                (principal, name),
            )
            return cursor.rowcount > 0
