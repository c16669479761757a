"""Queries of App Runner's resources and the agent's own: services, operations,
revisions, tags, services scaled to zero, connections, custom domains, access keys,
registry credentials and webhook deliveries.

Apart from ``observe.py`` because these rows are the desired state the rules and the
operations act on, while those are the history a person reads.
"""

from __future__ import annotations

from typing import Any

from ..models import ServiceSpec
from ..records import Operation, Revision, Service
from .base import StoreBase

# Services decoded from rows seen before: the reconcile pass, the routes and the scaler
# list every service each second or two, and with 100 idle services decoding their
# JSON specs again was a third of the agent's CPU. One record is shared by every caller:
# ``Service`` is frozen, and no code changes a spec read from the store (a change is
# written with ``update_service`` and read back as a new row).
_DECODED_KEPT = 4096


class ResourceTables(StoreBase):
    """Services, operations and revisions as typed records (``records.py``); the other
    tables as plain dicts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decoded_services: dict[tuple, Service] = {}

    # -- services ---------------------------------------------------------------

    def insert_service(self, service: Service) -> None:
        self._insert("services", service.to_row())

    def update_service(self, service_id: str, **fields: Any) -> None:
        if isinstance(fields.get("spec"), ServiceSpec):
            fields["spec"] = fields["spec"].to_dict()
        self._update("services", service_id, fields)

    def _services(self, sql: str, params: tuple = ()) -> list[Service]:
        names, rows = self._raw_rows(sql, params)
        decoded = self._decoded_services
        if len(decoded) > _DECODED_KEPT:
            decoded.clear()
        services = []
        for row in rows:
            service = decoded.get(row)
            if service is None:
                service = decoded[row] = Service.from_row(
                    self.decode_row(dict(zip(names, row, strict=True)))
                )
            services.append(service)
        return services

    def get_service(self, service_id: str) -> Service | None:
        return next(
            iter(self._services("SELECT * FROM services WHERE id = ?", (service_id,))), None
        )

    def service_by_arn(self, arn: str) -> Service | None:
        return next(iter(self._services("SELECT * FROM services WHERE arn = ?", (arn,))), None)

    def live_service_by_hostname(self, hostname: str) -> Service | None:
        rows = self._services(
            "SELECT * FROM services WHERE hostname = ? AND status != 'DELETED'", (hostname,)
        )
        return next(iter(rows), None)

    def list_services(self, include_deleted: bool = False) -> list[Service]:
        where = "" if include_deleted else "WHERE status != 'DELETED'"
        return self._services(f"SELECT * FROM services {where} ORDER BY created_at, id")

    def count_services(self) -> int:
        return len(self.list_services())

    # -- operations -------------------------------------------------------------

    def insert_operation(self, op: Operation) -> None:
        with self.transaction():
            seq = self._one("SELECT COALESCE(MAX(seq), 0) + 1 AS n FROM operations")["n"]
            self._insert("operations", {**op.to_row(), "seq": seq})

    def update_operation(self, operation_id: str, **fields: Any) -> None:
        self._update("operations", operation_id, fields)

    def _operations(self, sql: str, params: tuple = ()) -> list[Operation]:
        return [Operation.from_row(row) for row in self._rows(sql, params)]

    def get_operation(self, operation_id: str) -> Operation | None:
        rows = self._operations("SELECT * FROM operations WHERE id = ?", (operation_id,))
        return next(iter(rows), None)

    def list_operations(self, service_id: str) -> list[Operation]:
        """Newest first, as ListOperations returns them."""
        return self._operations(
            "SELECT * FROM operations WHERE service_id = ? ORDER BY seq DESC", (service_id,)
        )

    def operations_with_status(self, *statuses: str) -> list[Operation]:
        marks = ",".join("?" * len(statuses))
        return self._operations(
            f"SELECT * FROM operations WHERE status IN ({marks}) ORDER BY seq", statuses
        )

    # -- tags ---------------------------------------------------------------------

    def put_tags(self, resource_arn: str, tags: dict[str, str]) -> None:
        with self.transaction():
            self.db["tags"].upsert_all(
                [{"resource_arn": resource_arn, "key": k, "value": v} for k, v in tags.items()],
                pk=("resource_arn", "key"),
            )

    def remove_tags(self, resource_arn: str, keys: list[str] | None = None) -> None:
        with self.transaction():
            if keys is None:
                self.db.execute("DELETE FROM tags WHERE resource_arn = ?", (resource_arn,))
            for key in keys or []:
                self.db.execute(
                    "DELETE FROM tags WHERE resource_arn = ? AND key = ?", (resource_arn, key)
                )

    def get_tags(self, resource_arn: str) -> dict[str, str]:
        rows = self._rows(
            "SELECT key, value FROM tags WHERE resource_arn = ? ORDER BY key", (resource_arn,)
        )
        return {r["key"]: r["value"] for r in rows}

    def tag_values(self, key: str) -> dict[str, str]:
        """Every resource's value of the tag ``key``, by ARN: one query for all services."""
        rows = self._rows("SELECT resource_arn, value FROM tags WHERE key = ?", (key,))
        return {r["resource_arn"]: r["value"] for r in rows}

    # -- services scaled to zero ------------------------------------------------------

    def mark_idle(self, service_id: str, since: float) -> None:
        with self.transaction():
            self.db["idle_services"].upsert(
                {"service_id": service_id, "since": since}, pk="service_id"
            )

    def clear_idle(self, service_id: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM idle_services WHERE service_id = ?", (service_id,))

    def idle_services(self) -> dict[str, float]:
        """Service id -> when it went idle (epoch seconds)."""
        rows = self._rows("SELECT service_id, since FROM idle_services", ())
        return {r["service_id"]: r["since"] for r in rows}

    # -- registry credentials ----------------------------------------------------

    def put_registry_credentials(self, row: dict[str, Any]) -> None:
        with self.transaction():
            row = {**row, "username": self._seal_text(row.get("username"))}
            self.db["registry_credentials"].upsert(self.encode_row(row), pk="host")

    def get_registry_credentials(self, host: str) -> dict[str, Any] | None:
        """The row with its username opened; the password stays sealed (its caller's)."""
        row = self._one("SELECT * FROM registry_credentials WHERE host = ?", (host,))
        return self._open_text(row, "username")

    def delete_operation(self, operation_id: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM operations WHERE id = ?", (operation_id,))

    # -- connections, webhook deliveries -----------------------------------------

    def insert_connection(self, row: dict[str, Any]) -> None:
        self._insert("connections", row)

    def update_connection(self, arn: str, **fields: Any) -> None:
        self._update("connections", arn, fields)

    def get_connection(self, arn: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM connections WHERE arn = ?", (arn,))

    def connection_by_name(self, name: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM connections WHERE name = ?", (name,))

    def list_connections(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM connections ORDER BY created_at, name")

    def delete_connection(self, arn: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM connections WHERE arn = ?", (arn,))

    def record_delivery(self, delivery_id: str, now: float, keep_seconds: float) -> bool:
        """Remember a webhook delivery id; False if it was already known."""
        with self.transaction():
            self.db.execute("DELETE FROM deliveries WHERE received_at < ?", (now - keep_seconds,))
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO deliveries (id, received_at) VALUES (?, ?)",
                (delivery_id, now),
            )
            return cursor.rowcount == 1

    # -- revisions ----------------------------------------------------------------

    def add_revision(self, revision: Revision) -> None:
        self._insert("revisions", revision.to_row())

    def list_revisions(self, service_id: str) -> list[Revision]:
        """Newest first."""
        rows = self._rows(
            "SELECT * FROM revisions WHERE service_id = ? ORDER BY id DESC", (service_id,)
        )
        return [Revision.from_row(row) for row in rows]

    # -- custom domains -----------------------------------------------------------

    def insert_custom_domain(self, row: dict[str, Any]) -> None:
        self._insert("custom_domains", row)

    def list_custom_domains(self, service_id: str | None = None) -> list[dict[str, Any]]:
        """One service's domains (all services' without ``service_id``), oldest first."""
        where, params = ("WHERE service_id = ?", (service_id,)) if service_id else ("", ())
        return self._rows(
            f"SELECT * FROM custom_domains {where} ORDER BY created_at, domain_name", params
        )

    def get_custom_domain(self, service_id: str, domain_name: str) -> dict[str, Any] | None:
        return self._one(
            "SELECT * FROM custom_domains WHERE service_id = ? AND domain_name = ?",
            (service_id, domain_name),
        )

    def update_custom_domain(
        self, domain_id: str, *, expect_status: str | None = None, **fields: Any
    ) -> bool:
        """Update one domain; with ``expect_status`` only if it still has that status (a
        disassociation that came in meanwhile wins). True when a row changed."""
        values = self.encode_row(fields)
        sets = ", ".join(f"{name} = ?" for name in values)
        sql = f"UPDATE custom_domains SET {sets} WHERE id = ?"
        params: list[Any] = [*values.values(), domain_id]
        if expect_status is not None:
            sql += " AND status = ?"
            params.append(expect_status)
        with self.transaction():
            return self.db.execute(sql, params).rowcount > 0

    def delete_custom_domain(self, domain_id: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM custom_domains WHERE id = ?", (domain_id,))
