"""Keeps the stored history bounded: events and audit rows past their age are deleted
once an hour (a job on the agent's scheduler), so a long-running host's database does
not grow without end. Application and deployment logs have their own rotation
(``logs.py``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..jobs import Jobs
from ..store import Store

log = logging.getLogger("slipway.retention")

DAY = 86400.0
JOB = "retention"


class Retention:
    def __init__(
        self,
        store: Store,
        max_age_days: float,
        *,
        interval: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.max_age = max_age_days * DAY
        self.interval = interval
        self.clock = clock

    def prune_once(self) -> tuple[int, int]:
        """Delete what is past its age now; (events, audit rows) deleted."""
        events, audit = self.store.prune_history(self.clock() - self.max_age)
        if events or audit:
            log.info("deleted %d old events and %d old audit rows", events, audit)
        return events, audit

    def schedule(self, jobs: Jobs) -> None:
        jobs.every(JOB, self.interval, self.prune_once)
