"""Poison operations, with the fake backend: one that agent restarts keep cutting off
ends FAILED at operation_max_interruptions, the others still run (one interrupted at a
time), and a store that refuses writes ends the operation in hand once it can."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_services_worker import Env

from slipway.errors import InvalidRequest
from slipway.jobs import Jobs
from slipway.operations.runner import Done, Task


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


class HeldRunner:
    """Takes tasks and runs none: what was spawned stays visible."""

    def __init__(self) -> None:
        self.spawned: list[tuple[Task, Done]] = []

    def spawn(self, task: Task, done: Done) -> None:
        self.spawned.append((task, done))

    def stop(self) -> None:
        pass


def cut_off(env: Env, op_id: str) -> None:
    """What an agent that died in the middle of ``op_id`` leaves; then the next one starts."""
    env.store.update_operation(op_id, status="IN_PROGRESS")
    env.dispatcher.recover()


def deploy_log(env: Env, service_id: str, op_id: str) -> str:
    events, _ = env.logs.read(service_id, f"deployment/{op_id}")
    return "\n".join(e.message for e in events)


def test_an_operation_cut_off_n_times_ends_failed(tmp_path: Path) -> None:
    env = Env(tmp_path, operation_max_interruptions=2)
    service = env.create()
    [op] = env.store.operations_with_status("PENDING")

    cut_off(env, op.id)
    again = env.store.get_operation(op.id)
    assert (again.status, again.interruptions) == ("PENDING", 1)
    cut_off(env, op.id)

    ended = env.store.get_operation(op.id)
    assert (ended.status, ended.interruptions) == ("FAILED", 2)
    assert "interrupted 2 times" in ended.message
    assert "operation_max_interruptions" in ended.message
    assert env.status(service) == "CREATE_FAILED"
    assert "interrupted 2 times" in deploy_log(env, service.id, op.id)
    events = json.dumps(env.store.list_events(service.id))
    assert "interrupted 2 times" in events
    env.drain()  # nothing left to run: the agent does not try it a third time
    assert env.store.get_operation(op.id).status == "FAILED"


def test_a_cut_off_deployment_of_a_running_service_leaves_it_running(env: Env) -> None:
    service = env.create()
    env.drain()
    env.services.start_deployment(service.arn)
    [op] = env.store.operations_with_status("PENDING")
    cut_off(env, op.id)
    cut_off(env, op.id)
    assert env.store.get_operation(op.id).status == "FAILED"
    assert env.status(service) == "RUNNING"  # App Runner's status after a failed deployment
    assert env.router.routes  # the live revision keeps its route


def test_one_interruption_is_retried_and_completes(env: Env) -> None:
    service = env.create()
    [op] = env.store.operations_with_status("PENDING")
    cut_off(env, op.id)
    env.drain()
    assert env.store.get_operation(op.id).status == "SUCCEEDED"
    assert env.status(service) == "RUNNING"


def test_interrupted_operations_run_one_at_a_time(tmp_path: Path) -> None:
    env = Env(tmp_path, operation_max_interruptions=3)
    held = HeldRunner()
    env.dispatcher.runner = held
    first, second = env.create("first"), env.create("second")
    env.create("fresh")
    for service in (first, second):
        cut_off(env, env.store.list_operations(service.id)[0].id)

    env.dispatcher.dispatch_once()
    started = [env.store.get_operation(op_id) for op_id in ran(held)]
    # The first cut-off one and the untouched one start; the second cut-off one waits.
    assert sorted(env.store.get_service(o.service_id).name for o in started) == ["first", "fresh"]

    [cut] = [o for o in started if o.service_id == first.id]
    env.store.update_operation(cut.id, status="SUCCEEDED")  # as if it ran to its end
    env.dispatcher._ended(cut, None)
    env.dispatcher.dispatch_once()
    assert env.store.get_operation(ran(held)[-1]).service_id == second.id


def ran(held: HeldRunner) -> list[str]:
    """The ids of the operations spawned, read from their tasks' frames."""
    return [task.gi_frame.f_locals["op"].id for task, _ in held.spawned]


@pytest.mark.parametrize("value", [0, -1])
def test_a_nonsense_limit_refuses_to_start(tmp_path: Path, value: int) -> None:
    with pytest.raises(InvalidRequest, match="operation_max_interruptions"):
        Env(tmp_path, operation_max_interruptions=value)


def locked(env: Env) -> Callable[[], None]:
    """Another connection holds the database's write lock; returns its release."""
    env.store.db.execute("PRAGMA busy_timeout=0")  # fail at once instead of after 5 s
    other = sqlite3.connect(str(env.settings.data_dir / "db.sqlite"), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        other.execute("ROLLBACK")
        other.close()

    return release


def test_a_locked_store_ends_the_operation_once_it_can_and_says_so(env: Env) -> None:
    service = env.create()
    [op] = env.store.operations_with_status("PENDING")
    release = locked(env)
    try:
        env.dispatcher.dispatch_once()  # its first write is refused
        [problem] = env.operations.problems()
        assert op.id in problem and "database is locked" in problem
        env.dispatcher.runner = held = HeldRunner()
        env.dispatcher.dispatch_once()  # still locked: still said, and not run again
        assert env.operations.problems() and held.spawned == []
    finally:
        release()
    env.dispatcher.dispatch_once()
    ended = env.store.get_operation(op.id)
    assert ended.status == "FAILED" and "database is locked" in ended.message
    assert env.status(service) == "CREATE_FAILED"
    assert env.operations.problems() == []


def test_a_job_whose_store_fails_keeps_its_schedule_and_reports(env: Env) -> None:
    jobs = Jobs()
    release = locked(env)
    calls: list[int] = []

    def tick() -> None:
        calls.append(1)
        env.store.set_meta("tick", str(len(calls)))

    jobs.every("ticker", 0.05, tick)
    jobs.start()
    try:
        wait_for(lambda: jobs.problems(), "the refused write reported")
        [problem] = jobs.problems()
        assert "ticker" in problem and "database is locked" in problem
        release()
        wait_for(lambda: jobs.problems() == [], "the job's next run to succeed")
        assert env.store.get_meta("tick") and len(calls) >= 2
    finally:
        jobs.stop()


def wait_for(check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
