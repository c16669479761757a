"""Queries of traffic splits: per service, the ``traffic.Split`` its routes follow
(shares, revision tags), kept here so a split survives the agent's restarts."""

from __future__ import annotations

import time

from ..traffic import Split
from .base import StoreBase


class TrafficTables(StoreBase):
    def get_split(self, service_id: str) -> Split:
        row = self._one("SELECT split FROM traffic WHERE service_id = ?", (service_id,))
        return Split.from_row(row["split"] if row else None)

    def put_split(self, service_id: str, split: Split) -> None:
        """Store ``split`` (an empty one removes the row: the live deployment takes all)."""
        with self.transaction():
            if not split.shares and not split.tags:
                self.db.execute("DELETE FROM traffic WHERE service_id = ?", (service_id,))
                return
            row = {"service_id": service_id, "split": split.to_row(), "updated_at": time.time()}
            self.db["traffic"].upsert(self.encode_row(row), pk="service_id")

    def list_splits(self) -> dict[str, Split]:
        """Every service's split that is not empty, by service id."""
        rows = self._rows("SELECT service_id, split FROM traffic")
        return {r["service_id"]: Split.from_row(r["split"]) for r in rows}
