"""The metrics history: finished minutes copied to the store, read back after a restart,
merged into 5-minute and hourly steps, rolled up into hours and pruned by age."""

from __future__ import annotations

import types
from collections import Counter
from pathlib import Path

import pytest

from slipway.errors import InvalidRequest
from slipway.observe.history import DAY, HOUR, MetricsHistory
from slipway.observe.metrics import Metrics
from slipway.store import Store
from slipway.vault import Vault
from testkit.clock import Clock

HOSTS = {"web.localhost": "web", "gone.localhost": "gone"}
START = 1_800_000_000 // DAY * DAY  # midnight, so steps and hours line up


@pytest.fixture
def clock() -> Clock:
    return Clock(float(START))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite", Vault(tmp_path / "vault.key"))


def served(requests: int, seconds: float, errors: int = 0) -> types.SimpleNamespace:
    """What HAProxy counted for a host: ``requests``, ``errors`` of them 5xx, every one
    taking ``seconds``."""
    return types.SimpleNamespace(
        requests=requests,
        classes=Counter({"2xx": requests - errors, "5xx": errors}),
        latencies=[seconds],
        weight=requests,
    )


def history(store: Store, clock: Clock, metrics: Metrics, days: float = 7) -> MetricsHistory:
    return MetricsHistory(store, metrics, lambda: ["web"], days=days, clock=clock)


def test_finished_minutes_are_kept_across_a_restart(store: Store, clock: Clock) -> None:
    metrics = Metrics(None, clock=clock)
    for minute in range(3):
        clock.now = START + minute * 60 + 10
        metrics.count_served(HOSTS, {"web.localhost": served(10 * (minute + 1), 0.02)})
    clock.now = START + 3 * 60 + 1
    assert history(store, clock, metrics).record() == 3
    restarted = Metrics(None, clock=clock)  # an agent restart: memory is empty
    step, rows = history(store, clock, restarted).window("web", 5)
    assert step == 60
    assert [r["requests"] for r in rows] == [0, 10, 20, 30, 0]
    assert [r["minute"] for r in rows][1] == START
    assert rows[1]["p50"] is not None and rows[1]["p50"] <= 0.025


def test_the_minutes_in_memory_win_over_what_was_copied(store: Store, clock: Clock) -> None:
    metrics = Metrics(None, clock=clock)
    clock.now = START + 30
    metrics.count_served(HOSTS, {"web.localhost": served(5, 0.01)})
    clock.now = START + 61
    history(store, clock, metrics).record()
    clock.now = START + 59  # a request logged late, counted in its own minute
    metrics.count_served(HOSTS, {"web.localhost": served(2, 0.01)})
    clock.now = START + 62
    _, rows = history(store, clock, metrics).window("web", 2)
    assert [r["requests"] for r in rows] == [7, 0]


def test_a_day_is_read_in_five_minute_steps_with_merged_quantiles(
    store: Store, clock: Clock
) -> None:
    metrics = Metrics(None, clock=clock)
    keeper = history(store, clock, metrics)
    for minute in range(5):  # one 5-minute step: 99 fast requests and one slow
        clock.now = START + minute * 60 + 1
        metrics.count_served(HOSTS, {"web.localhost": served(99 if minute else 1, 0.004)})
        if minute == 4:
            metrics.count_served(HOSTS, {"web.localhost": served(1, 3.0, errors=1)})
        clock.now += 60
        keeper.record()
    clock.now = START + 2 * HOUR
    step, rows = history(store, clock, Metrics(None, clock=clock)).window("web", 1440)
    assert step == 300
    assert len(rows) == 288 and rows[-1]["minute"] == START + 2 * HOUR
    first = next(r for r in rows if r["minute"] == START)
    assert first["requests"] == 1 + 4 * 99 + 1 and first["5xx"] == 1
    assert first["p50"] <= 0.005 and first["p99"] <= 0.005
    assert sum(r["requests"] for r in rows) == first["requests"]


def test_old_minutes_become_hours_and_old_hours_go(store: Store, clock: Clock) -> None:
    metrics = Metrics(None, clock=clock)
    keeper = history(store, clock, metrics, days=2)
    for minute in (0, 30, 59, 60):
        clock.now = START + minute * 60 + 1
        metrics.count_served(HOSTS, {"web.localhost": served(10, 0.05)})
        metrics.count_served(HOSTS, {"gone.localhost": served(1, 0.05)})
        clock.now += 60
        keeper.record()
    clock.now = START + DAY + 3 * HOUR
    assert keeper.roll_up() == 8  # web's and gone's four minutes, older than a day and an hour
    rows = store.metric_rows("web", 0)
    assert [(start - START, span) for _, start, span, _ in rows] == [(0, HOUR), (HOUR, HOUR)]
    assert store.metric_rows("gone", 0) == []  # deleted services' rows go
    step, week = keeper.window("web", 2 * 1440)
    assert step == HOUR
    assert [r["requests"] for r in week if r["requests"]] == [30, 10]
    clock.now = START + 2 * DAY + 2 * HOUR
    keeper.roll_up()
    assert store.metric_rows("web", 0) == []


def test_a_window_past_the_history_names_the_setting(store: Store, clock: Clock) -> None:
    keeper = history(store, clock, Metrics(None, clock=clock), days=2)
    with pytest.raises(InvalidRequest, match="between 1 and 2880.*metrics_history_days: 2"):
        keeper.window("web", 2881)
    with pytest.raises(InvalidRequest, match="metrics_history_days"):
        MetricsHistory(store, Metrics(None), list, days=0.5)
