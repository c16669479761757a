"""What the metrics history costs: the agent's CPU to copy a minute of 100 services into
the store (the job that runs once a minute), to roll an hour of them up, and to read a
service's 1 h, 24 h and 7 d windows (what the console's charts ask every 10 s), on a
database already holding a full week (a day of minutes and a week of hours each).

Usage: .venv/bin/python bench/metrics_history.py [--services 100] [--record]
Goal: the minute's copy and a 7 d read each well under 100 ms of CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from common import record

from slipway.observe.history import DAY, HOUR, MINUTE, MetricsHistory
from slipway.observe.metrics import Metrics
from slipway.store import Store
from slipway.vault import Vault


def cpu_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    """The median process CPU of ``repeat`` calls, in ms."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    names = [f"svc{i}" for i in range(args.services)]
    hosts = {f"{n}.localhost": n for n in names}
    now = [float(int(time.time()) // HOUR * HOUR)]

    def clock() -> float:
        return now[0]

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "db.sqlite", Vault(Path(tmp) / "vault.key"))
        metrics = Metrics(None, clock=clock)
        history = MetricsHistory(store, metrics, lambda: names, clock=clock)
        figures = SimpleNamespace(
            requests=600, classes=Counter({"2xx": 590, "5xx": 10}), latencies=[0.01], weight=600
        )
        base = now[0] - 7 * DAY
        metrics.count_served(hosts, {h: figures for h in hosts})
        row = next(iter(metrics.minute_figures(0, 10**9)[names[0]].values()))
        rows = [(n, int(base + h * HOUR), HOUR, row) for n in names for h in range(6 * 24)] + [
            (n, int(now[0] - DAY + m * MINUTE), MINUTE, row) for n in names for m in range(1440)
        ]
        start = time.perf_counter()
        store.put_metric_rows(rows)
        fill = time.perf_counter() - start
        now[0] += 3 * MINUTE + 1
        for _ in range(3):
            now[0] -= MINUTE
            metrics.count_served(hosts, {h: figures for h in hosts})
        now[0] += 3 * MINUTE
        results = [
            (
                f"copy a minute of {args.services} services (3 minutes re-copied)",
                cpu_ms(history.record),
            ),
            ("read 1 h of one service (60 points)", cpu_ms(lambda: history.window(names[0], 60))),
            ("read 24 h (288 points)", cpu_ms(lambda: history.window(names[0], 1440))),
            ("read 7 d (168 points)", cpu_ms(lambda: history.window(names[0], 7 * 1440))),
        ]
        now[0] += HOUR
        results.append((f"roll up an hour of {args.services} services", cpu_ms(history.roll_up, 1)))
        size = (Path(tmp) / "db.sqlite").stat().st_size / 2**20
    lines = [
        f"### Metrics history, {time.strftime('%Y-%m-%d')}: {args.services} services, a week"
        f" stored ({len(rows)} rows, {size:.0f} MB, filled in {fill:.1f} s)",
        "",
        "| step | CPU ms (median of 5) |",
        "| --- | ---: |",
        *(f"| {name} | {ms:.1f} |" for name, ms in results),
    ]
    table = "\n".join(lines)
    print(table)
    if args.record:
        record(
            "bench/metrics_history.py",
            table,
            "The metrics history's cost (issue 19: 24 h and 7 d charts): the job that copies"
            " each finished\nminute into the agent's database, the hourly roll-up, and the"
            " reads behind the console's charts.\n",
        )


if __name__ == "__main__":
    main()
