"""Old events and audit rows are deleted; an event still owed to a target is kept."""

from __future__ import annotations

from pathlib import Path

from slipway.observe.retention import DAY, Retention
from slipway.store import Store
from slipway.vault import Vault

NOW = 1_000 * DAY


def event(store: Store, age_days: float, targets: tuple[str, ...] = ()) -> int:
    row = {"service_id": "s1", "time": NOW - age_days * DAY, "detail_type": "x", "body": {}}
    return store.add_event(row, targets)


def audit(store: Store, age_days: float) -> None:
    store.add_audit(
        {
            "time": NOW - age_days * DAY,
            "access_key_id": "AKID",
            "source_ip": "127.0.0.1",
            "user_agent": "test",
            "operation": "ListServices",
            "params": {},
            "outcome": "OK",
        }
    )


def test_old_history_goes_and_undelivered_events_stay(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite", Vault(tmp_path / "vault.key"))
    old = event(store, 100)
    owed = event(store, 100, ("t1",))
    delivered = event(store, 100, ("t2",))
    store.update_delivery("t2", delivered, status="delivered")
    recent = event(store, 1)
    audit(store, 100)
    audit(store, 1)
    retention = Retention(store, 90, clock=lambda: NOW)
    assert retention.prune_once() == (2, 1)
    kept = {e["id"] for e in store.list_events(since=0, limit=100)}
    assert kept == {owed, recent}
    assert old not in kept
    assert len(store.list_audit(since=0, limit=100)) == 1
    assert retention.prune_once() == (0, 0)
