"""The idle reconcile pass: a full pass only when the store, this agent's containers or
the work under way moved, or when ``reconcile_full_interval`` has passed; in between,
the health checks that are due, and what the upkeep makes of them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_services_worker import Env

from slipway.errors import InvalidRequest, RouterError
from slipway.health import ReconcilePace
from slipway.operations import reconcile


class Counted:
    """The router's applies and the health checks run, counted; checks answer ``up``."""

    def __init__(self, env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        self.applies = 0
        self.probed: list[tuple[str, int, float]] = []
        self.up = True
        apply = env.router.apply

        def counted_apply(routes):
            self.applies += 1
            return apply(routes)

        def probe_tcp_many(targets):
            self.probed += targets
            return [self.up] * len(targets)

        monkeypatch.setattr(env.router, "apply", counted_apply)
        monkeypatch.setattr(reconcile.health, "probe_tcp_many", probe_tcp_many)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path, reconcile_full_interval=3600)


def running(env: Env) -> tuple:
    service = env.create()
    env.drain()
    env.reconciler.reconcile_once()  # the first pass is a full one
    return service, env.backend.list_instances(service.id)


def test_an_idle_pass_only_runs_the_due_health_checks(env, monkeypatch):
    service, (inst,) = running(env)
    counted = Counted(env, monkeypatch)
    for _ in range(3):
        env.reconciler._probed.clear()  # due at every pass
        env.reconciler.reconcile_once()
    assert counted.applies == 0  # no route, stray or instance work
    assert [(host, port) for host, port, _ in counted.probed] == [
        (inst.host_ip, inst.host_port)
    ] * 3


def test_failing_checks_between_full_passes_replace_the_instance(env, monkeypatch):
    service, (inst,) = running(env)
    counted = Counted(env, monkeypatch)
    counted.up = False
    threshold = service.spec.health.unhealthy_threshold
    for _ in range(threshold):
        env.reconciler._probed.clear()
        env.reconciler.reconcile_once()
    assert counted.applies > 0  # the replacement joined the route
    (fresh,) = env.backend.list_instances(service.id)
    assert fresh.id != inst.id
    events, _ = env.logs.read(service.id, "events")
    assert any("failed its health check" in e.message for e in events)


def test_a_change_of_a_container_or_the_store_makes_the_next_pass_full(env, monkeypatch):
    service, (inst,) = running(env)
    counted = Counted(env, monkeypatch)
    env.backend.exit_instance(inst.id)  # crashed: the engine restarts it
    env.backend.restart_instance(inst.id)
    env.reconciler.reconcile_once()
    assert counted.applies == 1
    events, _ = env.logs.read(service.id, "events")
    assert any("the engine restarted it" in e.message for e in events)

    env.reconciler.reconcile_once()
    assert counted.applies == 1  # nothing moved since
    env.services.pause_service(service.arn)  # a store change (the operation, queued)
    env.reconciler.reconcile_once()
    assert counted.applies == 2


def test_a_full_pass_that_failed_comes_again_at_the_next_pass(env, monkeypatch):
    running(env)
    counted = Counted(env, monkeypatch)
    apply = env.router.apply

    def away(routes):
        monkeypatch.setattr(env.router, "apply", apply)  # back for the next pass
        raise RouterError("Caddy admin API unreachable")

    monkeypatch.setattr(env.router, "apply", away)
    env.reconciler._full_due = 0.0  # the full pass is due
    env.reconciler.reconcile_once()  # the router's failure is reported, not raised
    assert env.reconciler.plane.problems()
    env.reconciler.reconcile_once()
    assert counted.applies == 1


def test_a_full_pass_comes_at_least_every_full_interval(tmp_path, monkeypatch):
    env = Env(tmp_path, reconcile_interval=0.01, reconcile_full_interval=0.01)
    running(env)
    counted = Counted(env, monkeypatch)
    deadline = time.monotonic() + 0.02
    while time.monotonic() < deadline:  # past the interval, whatever the clock's grain
        time.sleep(0.005)
    env.reconciler.reconcile_once()
    assert counted.applies == 1


def test_store_changes_move_with_every_write(env):
    before = env.store.changes()
    assert env.store.changes() == before
    env.create()
    assert env.store.changes() != before


@pytest.mark.parametrize(
    ("pace", "setting"),
    [
        (ReconcilePace(interval=0), "reconcile_interval"),
        (ReconcilePace(interval=2, full_interval=1), "reconcile_full_interval"),
    ],
)
def test_a_pace_that_makes_no_sense_is_refused_naming_the_setting(pace, setting):
    with pytest.raises(InvalidRequest, match=setting):
        pace.check()


def test_the_agent_refuses_to_start_with_a_bad_pace(tmp_path):
    with pytest.raises(InvalidRequest, match="reconcile_full_interval"):
        Env(tmp_path, reconcile_interval=5, reconcile_full_interval=1)
