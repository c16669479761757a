"""Keeps the stored history bounded: events and audit rows past their age are deleted
once an hour, so a long-running host's database does not grow without end. Application
and deployment logs have their own rotation (``logs.py``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..errors import SlipwayError
from ..store import Store

log = logging.getLogger("slipway.retention")

DAY = 86400.0


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
        self._stop = threading.Event()

    def prune_once(self) -> tuple[int, int]:
        """Delete what is past its age now; (events, audit rows) deleted."""
        events, audit = self.store.prune_history(self.clock() - self.max_age)
        if events or audit:
            log.info("deleted %d old events and %d old audit rows", events, audit)
        return events, audit

    def start(self) -> None:
        threading.Thread(target=self._loop, name="slipway-retention", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while True:
            try:
                self.prune_once()
            except SlipwayError as exc:
                log.warning("pruning history failed: %s", exc.message)
            if self._stop.wait(self.interval):
                return
