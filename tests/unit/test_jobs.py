"""The one scheduler: a failing job keeps its schedule and says so on /healthz, a run
asked for while one runs is made up, and a loop job wakes at once."""

from __future__ import annotations

import threading
import time

from slipway.errors import SlipwayError
from slipway.jobs import Jobs


def test_a_failing_job_keeps_running_and_reports_until_it_succeeds():
    jobs = Jobs()
    runs: list[int] = []
    recovered = threading.Event()

    def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise SlipwayError("registry unreachable")
        recovered.set()

    jobs.every("flaky", 0.05, flaky)
    failing_seen = threading.Event()

    def watch() -> None:
        if jobs.problems() == ["job flaky: registry unreachable"]:
            failing_seen.set()

    jobs.every("watch", 0.01, watch)
    jobs.start()
    try:
        assert failing_seen.wait(5)
        assert recovered.wait(5)
        health = jobs.health()["flaky"]
        assert health.runs >= 3 and health.last_success is not None and not health.failing
    finally:
        jobs.stop()


def test_run_soon_while_running_runs_again_after():
    jobs = Jobs()
    inside, release, second = threading.Event(), threading.Event(), threading.Event()
    count: list[int] = []

    def slow() -> None:
        count.append(1)
        if len(count) == 1:
            inside.set()
            release.wait(5)
        else:
            second.set()

    jobs.every("slow", 3600, slow)  # runs once at start, then only when asked
    jobs.start()
    try:
        assert inside.wait(5)
        jobs.run_soon("slow")  # asked while it runs
        release.set()
        assert second.wait(5), "the run asked for during the first one was lost"
    finally:
        jobs.stop()


def test_a_loop_job_runs_when_woken():
    jobs = Jobs()
    wakeup = threading.Event()
    ran: list[int] = []
    first, woken = threading.Event(), threading.Event()

    def work() -> None:
        ran.append(1)
        (woken if len(ran) > 1 else first).set()

    jobs.loop("dispatch", 3600, work, wakeup)
    jobs.start()
    try:
        wakeup.set()
        assert first.wait(5)
        wakeup.set()
        assert woken.wait(5)
    finally:
        jobs.stop()


def test_each_job_counts_the_cpu_it_takes_not_the_time_it_waits():
    jobs = Jobs()
    done = threading.Event()

    def busy() -> None:
        start = time.thread_time()
        while time.thread_time() - start < 0.05:
            pass
        done.set()

    def waits() -> None:
        threading.Event().wait(0.1)  # blocked, not burning CPU

    jobs.every("busy", 3600, busy)
    jobs.every("waits", 3600, waits)
    jobs.start()
    try:
        assert done.wait(5)
        deadline = time.monotonic() + 5
        while min(h.runs for h in jobs.health().values()) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        health = jobs.health()
        assert health["busy"].cpu_seconds >= 0.05
        assert health["waits"].runs == 1 and health["waits"].cpu_seconds < 0.05
    finally:
        jobs.stop()
