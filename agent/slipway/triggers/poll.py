"""Polling: each watched source looked at on its own schedule, however many there are.

One APScheduler job per ``Watch.key`` (services that share a source share the job),
reconciled with ``list_watches()`` every 10 s by ``sync``. A job does one ``check``
(ls-remote or a registry request) and then sets its own next run time, so the schedule
can follow what happened:

- success: ``interval ± jitter*interval``;
- failure n in a row: ``min(interval * 2**n, max_backoff) ± jitter*interval``, and
  ``on_error`` is told how long until the retry. Terminal errors (a branch or image
  that is gone, refused credentials) back off the same way: the branch may come back,
  the token may be renewed; the callee reports them, the poller just keeps looking;
- a job's first run is a random time within its first interval, so a thousand
  repositories added at start do not all poll in the same second.

``on_found`` is called when what a source offers differs from the last ``Found`` for
that key, and on the first successful check of a key after ``start`` or after ``sync``
added it (or changed the services sharing it): the callee dedupes anyway, but a
thousand unchanged repositories should cost nothing past the ls-remote itself. A
``Found`` is remembered only once ``on_found`` returned, so one that failed is offered
again at the next poll.

Nothing escapes a job: a ``SlipwayError`` is a failure as above, any other exception is
logged with its traceback and treated as a passing failure (``PollFailed``). Successful
polls log nothing above DEBUG, and APScheduler's per-run INFO lines are quieted unless
someone configured those loggers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ..errors import SlipwayError
from ..sources.git import GitSource
from ..sources.registry import ImageRef, RegistryClient
from . import Found, Watch
from .tags import newest_matching, no_matching_tag

log = logging.getLogger(__name__)

SYNC_EVERY = 10.0  # seconds between reconciliations of jobs with list_watches()
WORKERS = 10  # checks running at once; the pool's threads are made once and reused
_SYNC_JOB = "slipway:poll-sync"
_JOB_PREFIX = "slipway:poll:"
_QUIETED = ("apscheduler.executors.default", "apscheduler.scheduler")


class PollFailed(SlipwayError):
    """A check failed in a way no adapter translated (a bug, a library surprise)."""

    terminal = False


@dataclass(frozen=True)
class PollStatus:
    """What the poller knows about one key, for tests, metrics and the console."""

    watch: Watch
    failures: int  # consecutive failed checks; 0 after a success
    last_found: Found | None  # the last Found handed to on_found
    checked_at: float | None  # clock() at the end of the last check
    next_in: float  # seconds from checked_at (or from being added) to the next check


class _Entry:
    __slots__ = ("watch", "failures", "last", "checked_at", "next_in", "running", "again", "gen")

    def __init__(self, watch: Watch, next_in: float) -> None:
        self.watch = watch
        self.failures = 0
        self.last: Found | None = None
        self.checked_at: float | None = None
        self.next_in = next_in
        self.running = False
        self.again = False  # poll_now while the check ran: run again right after
        self.gen = 0  # bumped when last must be forgotten (new services share the key)


class Poller:
    """Schedules ``check`` for every watch and reports what it finds or why it failed."""

    def __init__(
        self,
        list_watches: Callable[[], list[Watch]],
        check: Callable[[Watch], Found],
        on_found: Callable[[Watch, Found], None],
        on_error: Callable[[Watch, SlipwayError, float], None],
        *,
        jitter: float = 0.2,
        max_backoff: float = 900.0,
        scheduler: BaseScheduler | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction of the interval, 0 <= jitter < 1")
        if max_backoff <= 0:
            raise ValueError("max_backoff must be positive")
        self._list_watches = list_watches
        self._check = check
        self._on_found = on_found
        self._on_error = on_error
        self.jitter = jitter
        self.max_backoff = max_backoff
        self._own_scheduler = scheduler is None
        self._scheduler = scheduler or BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=WORKERS)}, timezone=UTC
        )
        self._clock = clock
        self._random = random.Random()
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()  # taken before the scheduler's own locks, never after
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler (if not already running), add every watch, re-sync every 10 s."""
        for name in _QUIETED:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)  # "Running job" twice per poll otherwise
        with self._lock:
            self._stopping = False
        if not self._scheduler.running:
            self._scheduler.start()
        self.sync()
        self._scheduler.add_job(
            self._sync_job,
            IntervalTrigger(seconds=SYNC_EVERY),
            id=_SYNC_JOB,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )

    def stop(self) -> None:
        """Stop polling; checks under way finish first (bounded by the sources' timeouts)."""
        with self._lock:
            # Jobs reschedule themselves under this lock, so none is left halfway into
            # the scheduler while shutdown holds its job-store lock and waits for it.
            self._stopping = True
            keys = list(self._entries)
            self._entries.clear()
        if self._own_scheduler:
            if self._scheduler.running:
                self._scheduler.shutdown(wait=True)
            return
        for job_id in [_SYNC_JOB, *(_JOB_PREFIX + key for key in keys)]:
            self._remove(job_id)

    # -- reconciliation -------------------------------------------------------------

    def sync(self) -> None:
        """Make the jobs match ``list_watches()``: add new keys, drop gone ones, reschedule
        a key whose interval changed (a fresh random first run within the new interval)."""
        wanted: dict[str, Watch] = {}
        for watch in self._list_watches():
            seen = wanted.get(watch.key)
            if seen is not None:  # the caller should have merged; merge anyway
                ids = seen.service_ids + tuple(
                    i for i in watch.service_ids if i not in seen.service_ids
                )
                watch = dataclasses.replace(
                    seen, interval=min(seen.interval, watch.interval), service_ids=ids
                )
            wanted[watch.key] = watch
        now = datetime.now(UTC)
        with self._lock:
            if self._stopping:
                return
            for key in [k for k in self._entries if k not in wanted]:
                del self._entries[key]
                self._remove(_JOB_PREFIX + key)
            for key, watch in wanted.items():
                entry = self._entries.get(key)
                if entry is None:
                    first = self._random.uniform(0, watch.interval)
                    self._entries[key] = _Entry(watch, first)
                    self._scheduler.add_job(
                        self._run,
                        self._fallback(watch),
                        args=(key,),
                        id=_JOB_PREFIX + key,
                        name=f"poll {key}",
                        next_run_time=now + timedelta(seconds=first),
                        replace_existing=True,
                        coalesce=True,
                        max_instances=1,
                        misfire_grace_time=None,
                    )
                    continue
                previous, entry.watch = entry.watch, watch  # fresh credentials callable
                if watch.service_ids != previous.service_ids:
                    entry.last, entry.gen = None, entry.gen + 1  # tell the newcomers too
                if watch.interval != previous.interval:
                    entry.next_in = self._random.uniform(0, watch.interval)
                    self._modify(
                        key,
                        trigger=self._fallback(watch),
                        next_run_time=now + timedelta(seconds=entry.next_in),
                    )

    def poll_now(self, key: str) -> None:
        """Check ``key`` as soon as a worker is free (after the check under way, if any)."""
        if key not in self._entries:
            try:
                self.sync()  # a service added since the last sync
            except Exception:
                log.exception("could not list the watches to poll %s", key)
                return
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self._stopping:
                log.debug("poll_now: nothing watches %s", key)
                return
            if entry.running:
                entry.again = True
                return
            self._modify(key, next_run_time=datetime.now(UTC))

    def status(self, key: str) -> PollStatus | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            return PollStatus(
                entry.watch, entry.failures, entry.last, entry.checked_at, entry.next_in
            )

    def watched_keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    # -- one poll -------------------------------------------------------------------

    def _run(self, key: str) -> None:
        """One check of ``key``; reports, then sets the job's next run time."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self._stopping:
                return
            entry.running, entry.again = True, False
            watch, gen = entry.watch, entry.gen
        found: Found | None = None
        error: SlipwayError | None = None
        try:
            found = self._check(watch)
        except SlipwayError as exc:
            error = exc
        except Exception as exc:
            log.exception("checking %s failed unexpectedly", watch.location)
            error = PollFailed(f"checking {watch.location} failed: {type(exc).__name__}: {exc}")
        with self._lock:
            if self._entries.get(key) is not entry:
                return  # removed (or replaced) while we were checking
            entry.checked_at = self._clock()
            if error is not None:
                entry.failures += 1
                delay = self._delay(watch.interval, entry.failures)
                report = True
            else:
                entry.failures = 0
                delay = self._delay(watch.interval, 0)
                report = found != entry.last
            entry.next_in = delay
        if error is not None:
            log.debug("checking %s failed (%s); retry in %.0fs", watch.location, error, delay)
            self._call(self._on_error, watch, error, delay)
        elif report and found is not None and self._call(self._on_found, watch, found):
            with self._lock:
                if entry.gen == gen:
                    entry.last = found
        with self._lock:
            entry.running = False
            if self._stopping or self._entries.get(key) is not entry:
                return
            when = 0.0 if entry.again else delay
            entry.again = False
            self._modify(key, next_run_time=datetime.now(UTC) + timedelta(seconds=when))

    def _delay(self, interval: float, failures: int) -> float:
        """Seconds to the next check: the interval, or its backoff, ± jitter*interval."""
        base = interval
        if failures:
            base = min(interval * 2 ** min(failures, 32), max(self.max_backoff, interval))
        return base + self._random.uniform(-self.jitter, self.jitter) * interval

    def _call(self, callback: Callable[..., None], *args: object) -> bool:
        try:
            callback(*args)
        except Exception:
            log.exception("%s failed", getattr(callback, "__name__", "poll callback"))
            return False
        return True

    # -- the scheduler --------------------------------------------------------------

    def _sync_job(self) -> None:
        try:
            self.sync()
        except Exception:
            log.exception("could not reconcile the polled sources; keeping the current ones")

    def _fallback(self, watch: Watch) -> IntervalTrigger:
        """The job's trigger, only a safety net: every run sets the next run time itself,
        so this fires only if a run never got to (it is longer than any backoff)."""
        return IntervalTrigger(seconds=2 * max(self.max_backoff, watch.interval) + 60)

    def _modify(self, key: str, **changes: object) -> None:
        try:
            self._scheduler.modify_job(_JOB_PREFIX + key, **changes)
        except JobLookupError:
            log.debug("poll job %s is gone", key)

    def _remove(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            self._scheduler.remove_job(job_id)


# -- the real check ----------------------------------------------------------------------


def check_source(git: GitSource, registry: RegistryClient) -> Callable[[Watch], Found]:
    """The ``check`` that asks the source itself: ls-remote for git, the registry's
    manifest (and tags list) for images. Credentials are looked up at every call."""

    def check(watch: Watch) -> Found:
        credentials = watch.credentials()
        if watch.kind == "git":
            token = credentials if isinstance(credentials, str) else None
            if watch.track_tags:
                tags = git.tags(watch.location, token=token)
                name = newest_matching(tags, watch.track_tags)
                if name is None:
                    raise no_matching_tag(watch.location, tags, watch.track_tags)
                return Found(revision=tags[name], ref=f"refs/tags/{name}")
            branch = watch.ref.removeprefix("refs/heads/")
            return Found(
                revision=git.head(watch.location, branch, token), ref=f"refs/heads/{branch}"
            )
        if watch.kind == "image":
            pair = credentials if isinstance(credentials, tuple) else None
            if watch.track_tags:
                image = ImageRef.parse(watch.location)
                names = registry.list_tags(image, pair)
                name = newest_matching(names, watch.track_tags)
                if name is None:
                    raise no_matching_tag(watch.location, names, watch.track_tags)
            else:
                name = watch.ref
            ref = ImageRef.parse(f"{watch.location}:{name}")
            return Found(revision=registry.resolve(ref, pair), ref=name)
        raise PollFailed(f"cannot poll a source of kind {watch.kind!r}")

    return check
