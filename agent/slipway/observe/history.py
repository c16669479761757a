"""Metrics past the metrics store's hour: each service's figures per minute for a day
and per hour for ``metrics_history_days`` (7 by default), in the agent's database, so
the console's 24 h and 7 d charts and ``slipway metrics --minutes`` have them and an
agent restart loses none but the minute it restarted in.

A job copies the last few finished minutes from ``Metrics`` once a minute (again each
time: a request logged late still lands in its minute), and once an hour rolls minutes
older than a day and an hour into hour rows, and deletes rows past the history's age
and those of deleted services. A day of minutes and a week of hours is 1,608 rows a
service. Reading a window merges the stored rows with the minutes still in memory
(which win: they are the newest count) into steps of 1, 5 or 60 minutes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import InvalidRequest
from ..jobs import Jobs
from ..store import Store
from .figures import Figures, empty, merge, summarize
from .metrics import KEEP_MINUTES, Metrics

log = logging.getLogger("slipway.metrics")

MINUTE, HOUR, DAY = 60, 3600, 86400
JOB, ROLL_UP_JOB = "metrics-history", "metrics-history-rollup"
RECOPIED = 3  # finished minutes copied again on each pass


def step_for(minutes: int) -> int:
    """Seconds a chart's point stands for: 1 minute up to an hour, 5 up to a day (288
    points), an hour beyond (168 for a week)."""
    if minutes <= KEEP_MINUTES:
        return MINUTE
    return 5 * MINUTE if minutes <= DAY // MINUTE else HOUR


class MetricsHistory:
    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        services: Callable[[], Iterable[str]],
        *,
        days: float = 7.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``services``: the names of every service not deleted."""
        if days < 1:
            raise InvalidRequest(f"setting metrics_history_days: {days} is less than 1")
        self.store = store
        self.metrics = metrics
        self.services = services
        self.days = days
        self.clock = clock

    @property
    def max_minutes(self) -> int:
        return int(self.days * DAY) // MINUTE

    def schedule(self, jobs: Jobs) -> None:
        jobs.every(JOB, MINUTE, self.record)
        jobs.every(ROLL_UP_JOB, HOUR, self.roll_up)

    def record(self) -> int:
        """Copy the last ``RECOPIED`` finished minutes of every service; rows written."""
        now = int(self.clock()) // MINUTE
        found = self.metrics.minute_figures(now - RECOPIED, now - 1)
        rows = [
            (name, minute * MINUTE, MINUTE, figures)
            for name, minutes in found.items()
            for minute, figures in minutes.items()
        ]
        self.store.put_metric_rows(rows)
        return len(rows)

    def roll_up(self) -> int:
        """Minutes older than a day and an hour into hour rows; rows past the history's
        age or of deleted services deleted. Returns the minute rows rolled up."""
        now = int(self.clock())
        before = (now - DAY - HOUR) // HOUR * HOUR
        minutes = self.store.metric_rows(None, 0, before=before, span=MINUTE)
        if minutes:
            first = minutes[0][1] // HOUR * HOUR
            hours: dict[tuple[str, int], Figures] = {
                (s, start): f for s, start, _, f in self.store.metric_rows(None, first, span=HOUR)
            }
            for service, start, _, figures in minutes:
                key = (service, start // HOUR * HOUR)
                hours[key] = merge(hours[key], figures) if key in hours else figures
            self.store.roll_metric_rows(
                MINUTE, before, [(s, start, HOUR, f) for (s, start), f in hours.items()]
            )
        pruned = self.store.prune_metric_rows(now - int(self.days * DAY), self.services())
        if minutes or pruned:
            log.info("metrics history: %d minutes rolled up, %d rows deleted", len(minutes), pruned)
        return len(minutes)

    def window(self, service: str, minutes: int) -> tuple[int, list[dict[str, Any]]]:
        """(step in seconds, rows oldest first) of the last ``minutes`` minutes, ending
        with the current step; a step with nothing counted has a row of zeros."""
        if not 1 <= minutes <= self.max_minutes:
            raise InvalidRequest(
                f"Minutes must be between 1 and {self.max_minutes}"
                f" (the metrics history keeps metrics_history_days: {self.days:g})"
            )
        step = step_for(minutes)
        now = int(self.clock()) // MINUTE
        last = now * MINUTE // step * step
        first = last - (-(-minutes * MINUTE // step) - 1) * step  # ceil(minutes / step) points
        spans: dict[tuple[int, int], Figures] = {
            (start, span): f for _, start, span, f in self.store.metric_rows(service, first)
        }
        kept = self.metrics.minute_figures(now - KEEP_MINUTES, now).get(service, {})
        spans.update({(m * MINUTE, MINUTE): f for m, f in kept.items()})
        steps: dict[int, Figures] = {}
        for (start, _), figures in sorted(spans.items()):
            at = start // step * step
            steps[at] = merge(steps.get(at) or empty(len(self.metrics.buckets)), figures)
        bounds = self.metrics.buckets
        return step, [
            summarize(at, steps.get(at), bounds) for at in range(first, now * MINUTE + 1, step)
        ]
