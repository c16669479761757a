"""The only module that speaks SQL: SQLite through sqlite-utils, WAL mode, versioned schema.

Services, operations and revisions go in and come out as typed records
(``records.py``); the other tables as plain dicts. JSON columns are decoded on the
way out. One connection is shared by the agent's threads behind a lock, which is
plenty for a control plane and keeps every multi-row change atomic.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from .errors import SlipwayError
from .models import ServiceSpec
from .records import Operation, Revision, Service

JSON_COLUMNS = {"spec", "params", "previous", "detail", "body", "pattern", "validation"}


def _m1_initial(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["services"].create(
        {
            "id": str,
            "name": str,
            "arn": str,
            "hostname": str,
            "status": str,
            "spec": str,
            "live_deployment_id": str,
            "live_revision": str,
            "latest_revision": str,
            "created_at": float,
            "updated_at": float,
            "deleted_at": float,
        },
        pk="id",
    )
    db["services"].create_index(["arn"], unique=True)
    db["operations"].create(
        {
            "id": str,
            "seq": int,
            "service_id": str,
            "target_arn": str,
            "type": str,
            "status": str,
            "params": str,
            "previous": str,
            "message": str,
            "created_at": float,
            "started_at": float,
            "ended_at": float,
            "updated_at": float,
        },
        pk="id",
    )
    db["operations"].create_index(["service_id", "seq"])
    db["auto_scaling_configurations"].create(
        {
            "arn": str,
            "name": str,
            "revision": int,
            "status": str,
            "max_concurrency": int,
            "min_size": int,
            "max_size": int,
            "is_default": int,
            "created_at": float,
            "deleted_at": float,
        },
        pk="arn",
    )
    db["auto_scaling_configurations"].create_index(["name", "revision"])
    db["tags"].create({"resource_arn": str, "key": str, "value": str}, pk=("resource_arn", "key"))
    db["access_keys"].create(
        {"id": str, "secret": str, "created_at": float, "description": str}, pk="id"
    )
    db["revisions"].create(
        {
            "id": int,
            "service_id": str,
            "revision": str,
            "image": str,
            "operation_id": str,
            "detail": str,
            "created_at": float,
        },
        pk="id",
    )
    db["revisions"].create_index(["service_id", "revision"])
    db["registry_credentials"].create(
        {"host": str, "username": str, "password": str, "updated_at": float}, pk="host"
    )


def _m2_connections(db: sqlite_utils.Database) -> None:
    db["connections"].create(
        {
            "arn": str,
            "name": str,
            "provider": str,
            "status": str,
            "credentials": str,  # sealed JSON: a token, or a GitHub App's id and key
            "webhook_secret": str,  # sealed
            "account": str,
            "created_at": float,
        },
        pk="arn",
    )
    db["connections"].create_index(["name"], unique=True)
    db["deliveries"].create({"id": str, "received_at": float}, pk="id")
    db["services"].add_column("latest_ref", str)


def _m3_observe(db: sqlite_utils.Database) -> None:
    """Events in EventBridge shape, notification targets and their deliveries, and the
    audit trail of API calls."""
    # AUTOINCREMENT: ids never come back after pruning, so "after id N" stays a cursor.
    db.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, service_id TEXT,"
        " time FLOAT, detail_type TEXT, body TEXT)"
    )
    db["events"].create_index(["service_id", "id"])
    db["events"].create_index(["time"])
    db["notify_targets"].create(
        {
            "id": str,
            "url": str,
            "pattern": str,  # JSON: an EventBridge event pattern
            "secret": str,  # sealed
            "format": str,  # json | slack
            "created_at": float,
            "source": str,  # config | api
        },
        pk="id",
    )
    db["deliveries_out"].create(
        {
            "target_id": str,
            "event_id": int,
            "service_id": str,  # the event's, so each (target, service) chain is one index scan
            "attempts": int,
            "next_attempt_at": float,
            "last_error": str,
            "status": str,  # pending | delivered | failed
            "created_at": float,
            "updated_at": float,
        },
        pk=("target_id", "event_id"),
    )
    db["deliveries_out"].create_index(["status", "target_id", "service_id", "event_id"])
    db.execute(
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time FLOAT,"
        " access_key_id TEXT, source_ip TEXT, user_agent TEXT, operation TEXT,"
        " params TEXT, outcome TEXT)"  # params: JSON, already redacted
    )
    db["audit"].create_index(["time"])


def _m4_custom_domains(db: sqlite_utils.Database) -> None:
    """Custom domains of services; ``validation`` maps each DNS name to its record status."""
    db["custom_domains"].create(
        {
            "id": str,
            "service_id": str,
            "domain_name": str,
            "enable_www": int,
            "status": str,
            "validation": str,  # JSON: {"example.com": "SUCCESS", ...}
            "reason": str,  # why it is not ACTIVE yet, as last noted in the events stream
            "created_at": float,
            "updated_at": float,
        },
        pk="id",
    )
    db["custom_domains"].create_index(["service_id", "domain_name"], unique=True)
    db["custom_domains"].create_index(["domain_name"])


# Append only: each entry moves the schema one version forward.
MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1_initial,
    _m2_connections,
    _m3_observe,
    _m4_custom_domains,
]


class StoreError(SlipwayError):
    pass


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    # -- plumbing ---------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        if "meta" not in self.db.table_names():
            return 0
        return int(self.get_meta("schema_version") or 0)

    def _migrate(self) -> None:
        with self.transaction():
            for version, step in enumerate(MIGRATIONS, start=1):
                if self.schema_version < version:
                    step(self.db)
                    self.set_meta("schema_version", str(version))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside happen or none do; nested blocks become savepoints."""
        with self._lock, self.db.atomic():
            yield

    def _rows(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        with self._lock:
            try:
                cursor = self.db.execute(sql, params)
            except sqlite3.Error as exc:
                raise StoreError(f"store query failed: {exc}") from exc
            names = [d[0] for d in cursor.description]
            return [_decode(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def _one(self, sql: str, params: tuple | dict = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        with self.transaction():
            self.db[table].insert(_encode(row))

    def _update(self, table: str, pk: Any, fields: dict[str, Any]) -> None:
        with self.transaction():
            self.db[table].update(pk, _encode(fields))

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    # -- services ---------------------------------------------------------------

    def insert_service(self, service: Service) -> None:
        self._insert("services", service.to_row())

    def update_service(self, service_id: str, **fields: Any) -> None:
        if isinstance(fields.get("spec"), ServiceSpec):
            fields["spec"] = fields["spec"].to_dict()
        self._update("services", service_id, fields)

    def _services(self, sql: str, params: tuple = ()) -> list[Service]:
        return [Service.from_row(row) for row in self._rows(sql, params)]

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

    # -- auto scaling configurations ---------------------------------------------

    def insert_auto_scaling(self, row: dict[str, Any]) -> None:
        self._insert("auto_scaling_configurations", row)

    def update_auto_scaling(self, arn: str, **fields: Any) -> None:
        self._update("auto_scaling_configurations", arn, fields)

    def get_auto_scaling(self, arn: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM auto_scaling_configurations WHERE arn = ?", (arn,))

    def list_auto_scaling(self, name: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM auto_scaling_configurations WHERE status = 'ACTIVE'"
        params: tuple = ()
        if name is not None:
            sql += " AND name = ?"
            params = (name,)
        return self._rows(sql + " ORDER BY name, revision", params)

    def max_auto_scaling_revision(self, name: str) -> int:
        row = self._one(
            "SELECT COALESCE(MAX(revision), 0) AS n FROM auto_scaling_configurations"
            " WHERE name = ?",
            (name,),
        )
        return row["n"]

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

    # -- access keys, registry credentials --------------------------------------

    def insert_access_key(self, row: dict[str, Any]) -> None:
        self._insert("access_keys", row)

    def get_access_key(self, key_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM access_keys WHERE id = ?", (key_id,))

    def count_access_keys(self) -> int:
        return self._one("SELECT COUNT(*) AS n FROM access_keys")["n"]

    def put_registry_credentials(self, row: dict[str, Any]) -> None:
        with self.transaction():
            self.db["registry_credentials"].upsert(_encode(row), pk="host")

    def get_registry_credentials(self, host: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM registry_credentials WHERE host = ?", (host,))

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
        values = _encode(fields)
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

    # == observe: events, notification targets and deliveries, audit ==============
    # Events and audit rows have increasing integer ids: a reader follows a stream by
    # asking for rows "after id N". Without a cursor it gets the newest ``limit``.

    def _stream(
        self,
        table: str,
        where: list[str],
        params: list[Any],
        since: float | None,
        after_id: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        if since is not None:
            where.append("time >= ?")
            params.append(since)
        if after_id is not None:
            where.append("id > ?")
            params.append(after_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = "ASC" if after_id is not None or since is not None else "DESC"
        rows = self._rows(
            f"SELECT * FROM {table} {clause} ORDER BY id {order} LIMIT ?", (*params, limit)
        )
        return rows if order == "ASC" else rows[::-1]

    def add_event(self, row: dict[str, Any], target_ids: Iterable[str] = ()) -> int:
        """Store an event and, in the same transaction, one pending delivery per target:
        an event is never kept without the deliveries it owes."""
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO events (service_id, time, detail_type, body) VALUES (?, ?, ?, ?)",
                (row["service_id"], row["time"], row["detail_type"], json.dumps(row["body"])),
            )
            event_id = int(cursor.lastrowid)
            for target_id in target_ids:
                self.db["deliveries_out"].insert(
                    {
                        "target_id": target_id,
                        "event_id": event_id,
                        "service_id": row["service_id"],
                        "attempts": 0,
                        "next_attempt_at": row["time"],
                        "last_error": None,
                        "status": "pending",
                        "created_at": row["time"],
                        "updated_at": row["time"],
                    }
                )
        return event_id

    def get_event(self, event_id: int) -> dict[str, Any] | None:
        return self._one("SELECT * FROM events WHERE id = ?", (event_id,))

    def list_events(
        self,
        service_id: str | None = None,
        *,
        since: float | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Oldest first: from ``after_id`` or ``since`` on, else the newest ``limit``."""
        where, params = ([], []) if service_id is None else (["service_id = ?"], [service_id])
        return self._stream("events", where, params, since, after_id, limit)

    def insert_notify_target(self, row: dict[str, Any]) -> None:
        self._insert("notify_targets", row)

    def update_notify_target(self, target_id: str, **fields: Any) -> None:
        self._update("notify_targets", target_id, fields)

    def get_notify_target(self, target_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM notify_targets WHERE id = ?", (target_id,))

    def list_notify_targets(self, source: str | None = None) -> list[dict[str, Any]]:
        if source is None:
            return self._rows("SELECT * FROM notify_targets ORDER BY created_at, id")
        return self._rows(
            "SELECT * FROM notify_targets WHERE source = ? ORDER BY created_at, id", (source,)
        )

    def delete_notify_target(self, target_id: str) -> None:
        """The target and every delivery it was owed."""
        with self.transaction():
            self.db.execute("DELETE FROM deliveries_out WHERE target_id = ?", (target_id,))
            self.db.execute("DELETE FROM notify_targets WHERE id = ?", (target_id,))

    def delivery_heads(self) -> list[dict[str, Any]]:
        """The oldest pending delivery of each (target, service) chain, with its event's
        body: only these may be attempted, so a service's events reach a target in order."""
        return self._rows(
            "SELECT d.*, e.body AS body FROM deliveries_out d JOIN events e ON e.id = d.event_id"
            " WHERE d.status = 'pending' AND d.event_id = ("
            "  SELECT MIN(h.event_id) FROM deliveries_out h WHERE h.status = 'pending'"
            "  AND h.target_id = d.target_id AND h.service_id = d.service_id)"
            " ORDER BY d.next_attempt_at, d.event_id"
        )

    def update_delivery(self, target_id: str, event_id: int, **fields: Any) -> None:
        self._update("deliveries_out", (target_id, event_id), fields)

    def list_deliveries(
        self, target_id: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if target_id is not None:
            where.append("target_id = ?")
            params.append(target_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return self._rows(
            f"SELECT * FROM deliveries_out {clause} ORDER BY event_id, target_id", tuple(params)
        )

    def prune_history(self, before: float) -> tuple[int, int]:
        """Delete events and audit rows older than ``before``; an event still owed to a
        notification target stays until it is delivered or given up. Returns the counts."""
        try:
            with self.transaction():
                self.db.execute(
                    "DELETE FROM deliveries_out WHERE status != 'pending' AND event_id IN"
                    " (SELECT id FROM events WHERE time < ?)",
                    (before,),
                )
                events = self.db.execute(
                    "DELETE FROM events WHERE time < ? AND id NOT IN"
                    " (SELECT event_id FROM deliveries_out)",
                    (before,),
                ).rowcount
                audit = self.db.execute("DELETE FROM audit WHERE time < ?", (before,)).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"pruning history failed: {exc}") from exc
        return events, audit

    def add_audit(self, row: dict[str, Any]) -> int:
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO audit (time, access_key_id, source_ip, user_agent, operation,"
                " params, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    row["time"],
                    row.get("access_key_id"),
                    row.get("source_ip"),
                    row.get("user_agent"),
                    row["operation"],
                    json.dumps(row.get("params") or {}),
                    row["outcome"],
                ),
            )
            return int(cursor.lastrowid)

    def list_audit(
        self, *, since: float | None = None, after_id: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Oldest first: from ``after_id`` or ``since`` on, else the newest ``limit``."""
        return self._stream("audit", [], [], since, after_id, limit)


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if k in JSON_COLUMNS and v is not None else v for k, v in row.items()}


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for key in JSON_COLUMNS & row.keys():
        if isinstance(row[key], str):
            row[key] = json.loads(row[key])
    return row
