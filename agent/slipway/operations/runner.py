"""Tasks that wait without holding a thread.

An operation spends most of its life waiting: for a health check's next probe, for
the settle window, for old instances to drain. A task is a generator that yields
``Wait(seconds)`` where it would sleep, and ``Offload(call, lane)`` for a long
blocking call (a build); the runner parks it on a timer heap or hands the call to its
lane, and resumes it on a small step pool. So 100 services deploying at once need
100 parked generators, not 100 sleeping threads: what bounds them is the step pool
(Docker calls) and the lanes (builds), which are sized for the host.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("slipway.operations")


@dataclass(frozen=True)
class Wait:
    """Resume after ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Offload:
    """Run ``call`` in ``lane`` (a pool of its own) and resume with its result."""

    call: Callable[[], Any]
    lane: str


Task = Generator[Wait | Offload, Any, Any]
Done = Callable[[Any, BaseException | None], None]  # (result, error)


def run_now(task: Task, sleep: Callable[[float], None] = time.sleep) -> Any:
    """Drive a task to its end in this thread, waiting with ``sleep``."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = task.throw(error) if error is not None else task.send(value)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        if isinstance(step, Wait):
            sleep(step.seconds)
            continue
        try:
            value = step.call()
        except Exception as exc:  # noqa: BLE001 - thrown into the task, as Runner does
            error = exc


class InlineRunner:
    """Runs each task to its end inside ``spawn``, its waits skipped: a fake of
    ``Runner`` for unit tests, where an operation should be over when the call returns."""

    def spawn(self, task: Task, done: Done) -> None:
        try:
            result = run_now(task, sleep=lambda seconds: None)
        except Exception as exc:  # noqa: BLE001 - handed to done(), as Runner does
            done(None, exc)
            return
        done(result, None)

    def stop(self) -> None:
        pass


class Runner:
    def __init__(self, *, steps: int = 8, lanes: dict[str, int] | None = None) -> None:
        self._steps = ThreadPoolExecutor(max_workers=steps, thread_name_prefix="slipway-step")
        self._lanes = {
            name: ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"slipway-{name}")
            for name, size in (lanes or {}).items()
        }
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._cv = threading.Condition()
        self._stopped = False
        self._clock = threading.Thread(target=self._tick, name="slipway-timers", daemon=True)
        self._clock.start()

    def spawn(self, task: Task, done: Done) -> None:
        """Start ``task``; ``done(result, error)`` is called once when it ends."""
        self._submit(self._advance, task, done, None, None)

    def stop(self) -> None:
        """Park every task for good: an operation cut off here is picked up again by
        the next agent's recovery, as after a crash."""
        with self._cv:
            self._stopped = True
            self._timers.clear()
            self._cv.notify()
        for pool in (self._steps, *self._lanes.values()):
            pool.shutdown(wait=False, cancel_futures=True)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # shut down: the task stays parked
            self._steps.submit(fn, *args)

    def _advance(self, task: Task, done: Done, value: Any, error: BaseException | None) -> None:
        try:
            step = task.throw(error) if error is not None else task.send(value)
        except StopIteration as stop:
            self._finish(done, stop.value, None)
            return
        except Exception as exc:  # noqa: BLE001 - handed to done(), which decides
            self._finish(done, None, exc)
            return
        if isinstance(step, Wait):
            self._after(step.seconds, lambda: self._submit(self._advance, task, done, None, None))
            return
        lane = self._lanes.get(step.lane, self._steps)

        def resumed(future: Future) -> None:
            exc = future.exception()
            result = None if exc is not None else future.result()
            self._submit(self._advance, task, done, result, exc)

        with contextlib.suppress(RuntimeError):  # shut down: the task stays parked
            lane.submit(step.call).add_done_callback(resumed)

    def _finish(self, done: Done, result: Any, error: BaseException | None) -> None:
        try:
            done(result, error)
        except Exception:  # a bug in a completion must not kill the step pool's thread
            log.exception("task completion failed")

    def _after(self, seconds: float, call: Callable[[], None]) -> None:
        with self._cv:
            if self._stopped:
                return
            heapq.heappush(
                self._timers, (time.monotonic() + max(0.0, seconds), next(self._order), call)
            )
            self._cv.notify()

    def _tick(self) -> None:
        while True:
            with self._cv:
                while not self._stopped and (
                    not self._timers or self._timers[0][0] > time.monotonic()
                ):
                    timeout = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._cv.wait(timeout)
                if self._stopped:
                    return
                _, _, call = heapq.heappop(self._timers)
            call()
