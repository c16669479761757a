"""The agent's one scheduler: every periodic job (reconcile, metrics, notifications,
retention, domain checks, scaling samples, polls) runs on it, and each reports its last
success, last error and the CPU time it has taken, which ``/healthz`` shows: what an
idle agent spends its CPU on is read there, not guessed.

A job that raises keeps its schedule: the error is logged and recorded, and the next
run comes at its time. ``run_soon`` brings a job's next run forward, for work that
reacts to a change (a new operation, an event to deliver) faster than its interval.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger("slipway.jobs")

# Enough for every periodic job plus the polls at once; a job holds one only while it runs.
WORKERS = 16
# "Running job" per run, and "skipped: maximum number of running instances" whenever a
# run comes due while the last one still runs (harmless: runs coalesce, and a run asked
# for by ``run_soon`` meanwhile is made up when the running one ends).
_QUIETED = {
    "apscheduler.executors.default": logging.WARNING,
    "apscheduler.scheduler": logging.ERROR,
}


@dataclass
class JobHealth:
    """What a job last did: times are epoch seconds, None when it has not happened."""

    runs: int = 0
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    cpu_seconds: float = 0.0  # the job's own thread's CPU time, over all its runs

    @property
    def failing(self) -> bool:
        return self.last_error_at is not None and (
            self.last_success is None or self.last_error_at > self.last_success
        )


class Jobs:
    def __init__(self, *, workers: int = WORKERS, clock: Callable[[], float] = time.time) -> None:
        for name, level in _QUIETED.items():
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(level)
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=workers)}, timezone=UTC
        )
        self._clock = clock
        self._health: dict[str, JobHealth] = {}
        self._lock = threading.Lock()
        self._loops: list[threading.Thread] = []
        self._again: set[str] = set()  # jobs asked to run while they were running
        self._stopping = threading.Event()

    def every(
        self, name: str, seconds: float, run: Callable[[], object], *, first: float = 0.0
    ) -> None:
        """Run ``run`` every ``seconds`` (first after ``first`` seconds); one at a time,
        runs missed while one was busy are folded into one."""
        with self._lock:
            self._health.setdefault(name, JobHealth())
        self.scheduler.add_job(
            self._guarded,
            IntervalTrigger(seconds=seconds),
            args=(name, run),
            id=name,
            name=name,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
            next_run_time=datetime.fromtimestamp(time.time() + first, UTC),
        )

    def loop(
        self, name: str, seconds: float, run: Callable[[], object], wakeup: threading.Event
    ) -> None:
        """A job on a thread of its own that also runs as soon as ``wakeup`` is set: for
        work that must react faster than a scheduler tick (an operation queued by an API
        call starts at once, not at the next second). Started with the scheduler."""
        with self._lock:
            self._health.setdefault(name, JobHealth())

        def spin() -> None:
            while not self._stopping.is_set():
                wakeup.wait(seconds)
                wakeup.clear()
                if self._stopping.is_set():
                    return
                self._guarded(name, run)

        self._loops.append(threading.Thread(target=spin, name=f"slipway-{name}", daemon=True))

    def run_soon(self, name: str) -> None:
        """Bring the job's next run forward to now; asked while it runs, it runs again
        as soon as that run ends."""
        with self._lock:
            self._again.add(name)
        # Not scheduled (yet, or any more): its next regular run will do.
        with contextlib.suppress(JobLookupError):
            self.scheduler.modify_job(name, next_run_time=datetime.now(UTC))

    def health(self) -> dict[str, JobHealth]:
        with self._lock:
            return {name: JobHealth(**vars(h)) for name, h in self._health.items()}

    def problems(self) -> list[str]:
        """One line per job whose last run failed, for ``/healthz``."""
        return [
            f"job {name}: {h.last_error}" for name, h in sorted(self.health().items()) if h.failing
        ]

    def start(self) -> None:
        if not self.scheduler.running:
            self.scheduler.start()
        for thread in self._loops:
            if not thread.is_alive():
                thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)

    def _guarded(self, name: str, run: Callable[[], object]) -> None:
        while True:
            with self._lock:
                self._again.discard(name)
            self._run_once(name, run)
            with self._lock:
                if name not in self._again:
                    return

    def _run_once(self, name: str, run: Callable[[], object]) -> None:
        # Any error: a bug or a passing fault must not end the job's schedule.
        cpu = time.thread_time()
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - recorded, reported on /healthz, retried
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            with self._lock:
                h = self._health.setdefault(name, JobHealth())
                repeated = h.failing and h.last_error == message
            # Said once while it keeps failing the same way (a job may run every second).
            level = logging.DEBUG if repeated else logging.WARNING
            log.log(level, "job %s failed: %s", name, message, exc_info=not hasattr(exc, "message"))
            with self._lock:
                h.runs += 1
                h.cpu_seconds += time.thread_time() - cpu
                h.last_error, h.last_error_at = message, self._clock()
            return
        with self._lock:
            h = self._health.setdefault(name, JobHealth())
            h.runs += 1
            h.cpu_seconds += time.thread_time() - cpu
            h.last_success = self._clock()
