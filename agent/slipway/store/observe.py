"""Queries of what the agent observed: events, notification targets and their
deliveries, and the audit trail of API calls.

Apart from ``resources.py`` because these tables are append-mostly streams read by
cursor and pruned by age, not state that anything acts on.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from .base import StoreBase, StoreError


class ObserveTables(StoreBase):
    """Events and audit rows have increasing integer ids: a reader follows a stream by
    asking for rows "after id N". Without a cursor it gets the newest ``limit``."""

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

    # A target's URL is sealed here (an incoming-webhook URL is a credential); its
    # secret comes sealed by the Notifier.

    def insert_notify_target(self, row: dict[str, Any]) -> None:
        self._insert("notify_targets", {**row, "url": self._seal_text(row["url"])})

    def update_notify_target(self, target_id: str, **fields: Any) -> None:
        if "url" in fields:
            fields["url"] = self._seal_text(fields["url"])
        self._update("notify_targets", target_id, fields)

    def get_notify_target(self, target_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM notify_targets WHERE id = ?", (target_id,))
        return self._open_text(row, "url")

    def list_notify_targets(self, source: str | None = None) -> list[dict[str, Any]]:
        if source is None:
            rows = self._rows("SELECT * FROM notify_targets ORDER BY created_at, id")
        else:
            rows = self._rows(
                "SELECT * FROM notify_targets WHERE source = ? ORDER BY created_at, id",
                (source,),
            )
        return [self._open_text(row, "url") for row in rows]

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
                " params, outcome, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row["time"],
                    row.get("access_key_id"),
                    row.get("source_ip"),
                    row.get("user_agent"),
                    row["operation"],
                    json.dumps(row.get("params") or {}),
                    row["outcome"],
                    row.get("request_id"),
                ),
            )
            return int(cursor.lastrowid)

    def list_audit(
        self, *, since: float | None = None, after_id: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Oldest first: from ``after_id`` or ``since`` on, else the newest ``limit``."""
        return self._stream("audit", [], [], since, after_id, limit)
