"""Tasks park on waits without holding a step thread, and errors reach them."""

from __future__ import annotations

import threading

from slipway.operations.runner import Offload, Runner, Wait, run_now


def test_a_waiting_task_leaves_the_only_step_thread_to_others():
    runner = Runner(steps=1)
    parked, other_done = threading.Event(), threading.Event()
    results: list[object] = []

    def long_wait():
        parked.set()
        yield Wait(3600)

    def quick():
        return "quick"
        yield  # a generator

    try:
        runner.spawn(long_wait(), lambda result, error: None)
        assert parked.wait(5)
        runner.spawn(quick(), lambda result, error: (results.append(result), other_done.set()))
        assert other_done.wait(5), "the parked task held the step thread"
        assert results == ["quick"]
    finally:
        runner.stop()


def test_an_offloaded_call_returns_its_value_and_its_error_into_the_task():
    runner = Runner(steps=1, lanes={"build": 1})
    done = threading.Event()
    seen: list[object] = []

    def task():
        seen.append((yield Offload(lambda: 41 + 1, "build")))
        try:
            yield Offload(lambda: 1 / 0, "build")
        except ZeroDivisionError as exc:
            seen.append(type(exc).__name__)
        yield Wait(0)
        return "end"

    try:
        runner.spawn(task(), lambda result, error: (seen.append((result, error)), done.set()))
        assert done.wait(5)
        assert seen == [42, "ZeroDivisionError", ("end", None)]
        seen.clear()
        assert run_now(task(), sleep=lambda s: None) == "end"
        assert seen == [42, "ZeroDivisionError"]
    finally:
        runner.stop()


def test_a_task_that_raises_ends_with_its_error():
    runner = Runner(steps=1)
    done = threading.Event()
    errors: list[BaseException | None] = []

    def task():
        yield Wait(0)
        raise ValueError("boom")

    try:
        runner.spawn(task(), lambda result, error: (errors.append(error), done.set()))
        assert done.wait(5)
        assert isinstance(errors[0], ValueError)
    finally:
        runner.stop()
