"""Queries of the metrics history (``observe/history.py``): one row per service and span
(a minute, or an hour once minutes are rolled up), its figures as JSON.

Apart from ``observe.py`` because these rows are figures keyed by time, replaced in
place as a span fills up and rolled up as they age, not a stream read by cursor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .base import StoreBase

MetricRow = tuple[str, int, int, dict[str, Any]]  # service, start, span (s), figures


class MetricHistoryTables(StoreBase):
    def put_metric_rows(self, rows: Iterable[MetricRow]) -> None:
        """Store the rows, each replacing the one of its service, start and span."""
        with self.transaction():
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO metric_history (service, start, span, figures)"
                " VALUES (?, ?, ?, ?)",
                [(s, start, span, json.dumps(f)) for s, start, span, f in rows],
            )

    def metric_rows(
        self, service: str | None, since: int, before: int | None = None, span: int | None = None
    ) -> list[MetricRow]:
        """Rows starting at ``since`` or later (and before ``before``), oldest first;
        of one service or, with None, of all."""
        where, params = ["start >= ?"], [since]
        for clause, value in (("service = ?", service), ("start < ?", before), ("span = ?", span)):
            if value is not None:
                where.append(clause)
                params.append(value)
        _, rows = self._raw_rows(
            "SELECT service, start, span, figures FROM metric_history"
            f" WHERE {' AND '.join(where)} ORDER BY start",
            tuple(params),
        )
        return [(s, start, span_, json.loads(f)) for s, start, span_, f in rows]

    def roll_metric_rows(self, span: int, before: int, merged: Iterable[MetricRow]) -> None:
        """Put ``merged`` in place of the rows of ``span`` that start before ``before``, in
        one transaction: a reader sees either the minutes or the hours they became."""
        with self.transaction():
            self.db.execute(
                "DELETE FROM metric_history WHERE span = ? AND start < ?", (span, before)
            )
            self.put_metric_rows(merged)

    def prune_metric_rows(self, before: int, keep: Iterable[str]) -> int:
        """Delete rows older than ``before`` and every row of a service not in ``keep``
        (deleted ones); the rows deleted."""
        names = sorted(set(keep))
        marks = ",".join("?" * len(names))
        with self.transaction():
            cursor = self.db.execute(
                f"DELETE FROM metric_history WHERE start < ? OR service NOT IN ({marks})",
                (before, *names),
            )
        return int(cursor.rowcount)
