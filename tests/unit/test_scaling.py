"""Auto scaling: the decision over sample windows, the host's capacity, the auto
scaling configuration API, and the reconciler adding and removing live instances with the
fake backend."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from test_services_worker import Env

from slipway.api.validate import validate_input
from slipway.errors import BackendError, InvalidRequest
from slipway.observe.events import SCALING_DETAIL_TYPE
from slipway.records import Service
from slipway.scaling import Autoscaler, Capacity, Scaler, needed

# -- pure decisions -------------------------------------------------------------------


def test_needed_is_in_flight_over_max_concurrency_within_min_and_max():
    assert needed(0, 2, 1, 4) == 1
    assert needed(3, 2, 1, 4) == 2
    assert needed(8, 2, 1, 4) == 4
    assert needed(100, 2, 1, 4) == 4
    assert needed(0, 2, 3, 4) == 3


def test_scale_out_needs_a_whole_window_of_overload():
    a = Autoscaler(out_window=2.0, in_cooldown=10.0)
    a.observe("s", 4, 0.0)
    assert a.decide("s", 1, 0.0) is None  # one sample is a burst
    a.observe("s", 4, 1.0)
    assert a.decide("s", 1, 1.0) is None
    a.observe("s", 3, 2.0)
    assert a.decide("s", 1, 2.0) == 3  # the least any sample of the window asked for
    a.acted("s", 2.0)
    a.observe("s", 4, 3.0)
    assert a.decide("s", 3, 3.0) is None  # a new window starts after an action


def test_a_dip_in_the_window_holds_scale_out_back():
    a = Autoscaler(out_window=2.0, in_cooldown=10.0)
    for t, need in ((0.0, 4), (1.0, 1), (2.0, 4)):
        a.observe("s", need, t)
    assert a.decide("s", 1, 2.0) is None


def test_scale_in_waits_for_a_quiet_cooldown():
    a = Autoscaler(out_window=1.0, in_cooldown=5.0)
    a.acted("s", 0.0)
    for t in range(0, 5):
        a.observe("s", 1, float(t))
        assert a.decide("s", 4, float(t)) is None
    a.observe("s", 2, 5.0)
    assert a.decide("s", 4, 5.0) == 2  # the most any sample of the cooldown asked for
    a.forget("s")
    assert a.decide("s", 4, 6.0) is None


def test_runs_decide_as_every_sample_would():
    """Samples kept as runs of one count decide exactly as the samples themselves: a
    reference that keeps every sample, over random loads, actions and forgets."""
    rng = random.Random(12)
    for _ in range(200):
        a = Autoscaler(out_window=2.0, in_cooldown=6.0)
        samples: list[tuple[float, int]] = []
        since = last = None
        for tick in range(40):
            now = tick * 0.5
            need = rng.choice((1, 1, 1, 2, 3))
            a.observe("s", need, now)
            samples.append((now, need))
            since = now if since is None else since
            serving = rng.choice((1, 2, 3))
            recent = [n for t, n in samples if t >= now - 2.0]
            window = [n for t, n in samples if t >= now - 6.0]
            expected = None
            if now - since >= 2.0 and min(recent) > serving:
                expected = min(recent)
            elif (
                now - since >= 6.0 and (last is None or now - last >= 6.0) and max(window) < serving
            ):
                expected = max(window)
            assert a.decide("s", serving, now) == expected
            if expected is not None:
                a.acted("s", now)
                last, samples, since = now, [], None
            elif rng.random() < 0.05:
                a.forget("s")
                samples, since = [], None


def test_a_steady_service_keeps_one_run():
    a = Autoscaler(out_window=2.0, in_cooldown=60.0)
    for t in range(120):
        a.observe("s", 1, float(t))
    assert len(a._history["s"].runs) == 1


def test_capacity_room():
    cap = Capacity(cpu=2048, memory=4096)
    assert cap.room((0, 0), (256, 512)) == 8
    assert cap.room((1024, 1024), (512, 1024)) == 2
    assert cap.room((4096, 0), (256, 512)) == 0


# -- auto scaling configurations -------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_update_default_moves_the_default_and_new_services_keep_theirs(env):
    first = env.create("one")
    custom = env.services.create_auto_scaling(
        {"AutoScalingConfigurationName": "busy", "MinSize": 2, "MaxSize": 3}
    )
    row = env.services.update_default_auto_scaling(custom["arn"])
    assert row["is_default"] == 1
    default = [r for r in env.services.list_auto_scaling(None, False) if r["is_default"]]
    assert [r["arn"] for r in default] == [custom["arn"]]
    second = env.create("two")
    assert env.services.services_for_auto_scaling(custom["arn"]) == [second.arn]
    default_arn = env.services.list_auto_scaling("DefaultConfiguration", False)[0]["arn"]
    assert env.services.services_for_auto_scaling(default_arn) == [first.arn]
    with pytest.raises(InvalidRequest, match="is the default"):
        env.services.delete_auto_scaling(custom["arn"], True)


def test_max_size_above_25_is_refused(env):
    with pytest.raises(InvalidRequest, match="MaxSize"):
        env.services.create_auto_scaling({"AutoScalingConfigurationName": "huge", "MaxSize": 26})
    assert env.services.list_auto_scaling("huge", False) == []


# -- the worker and the scaler -----------------------------------------------------------


def scaled_env(env: Env, **asc) -> tuple[Service, Scaler, list[float]]:
    cfg = env.services.create_auto_scaling({"AutoScalingConfigurationName": "scale", **asc})
    service = env.create(
        AutoScalingConfigurationArn=cfg["arn"],
        InstanceConfiguration={"Cpu": "256", "Memory": "512"},
    )
    env.drain()
    now = [0.0]
    scaler = Scaler(
        env.store,
        env.settings,
        env.services,
        env.router,
        env.backend,
        env.reconciler,
        env.journal,
        clock=lambda: now[0],
    )
    return service, scaler, now


def serving(env: Env, service: dict) -> list:
    row = env.store.get_service(service.id)
    return env.routes.serving(row, env.backend.list_instances())


def events_lines(env: Env, service: dict) -> list[str]:
    return [e.message for e in env.logs.read(service.id, "events")[0]]


def scaling_events(env: Env, service: dict) -> list[dict]:
    rows = env.events.list(service.id)
    return [r["body"]["detail"] for r in rows if r["detail_type"] == SCALING_DETAIL_TYPE]


def load(env: Env, service: Service, per_instance: int) -> None:
    """Requests in flight on each serving instance, as Caddy would count them."""
    env.router.flights = {i.address: per_instance for i in serving(env, service)}


def test_scaler_scales_out_under_sustained_load_and_back_in_when_idle(tmp_path):
    env = Env(tmp_path, scale_out_window=2.0, scale_in_cooldown=5.0)
    service, scaler, now = scaled_env(env, MaxConcurrency=2, MinSize=1, MaxSize=4)
    assert len(serving(env, service)) == 1
    load(env, service, 8)
    for t in (0.0, 1.0, 2.0):
        now[0] = t
        scaler.sample_once()
    after_out = serving(env, service)
    assert len(after_out) == 4
    assert {i.address for i in after_out} == set(env.router.routes[0].upstreams)
    assert any("Scaled out from 1 to 4 instance(s)" in line for line in events_lines(env, service))
    assert scaling_events(env, service)[-1]["currentInstanceCount"] == 4
    # Load ends: nothing happens before the cooldown, then back to MinSize.
    env.router.flights = {}
    for t in range(3, 8):
        now[0] = float(t)
        scaler.sample_once()
    assert len(serving(env, service)) == 4
    for t in range(8, 14):
        now[0] = float(t)
        scaler.sample_once()
    assert len(serving(env, service)) == 1
    assert len(env.router.routes[0].upstreams) == 1
    assert any("Scaled in from 4 to 1" in line for line in events_lines(env, service))
    assert scaling_events(env, service)[-1]["currentInstanceCount"] == 1


def test_scale_out_beyond_the_host_capacity_is_refused_once(tmp_path):
    env = Env(
        tmp_path,
        scale_out_window=1.0,
        scale_in_cooldown=60.0,
        capacity_cpu=512,
        capacity_memory=100_000,
    )
    service, scaler, now = scaled_env(env, MaxConcurrency=1, MinSize=1, MaxSize=4)
    load(env, service, 4)
    for t in (0.0, 1.0):
        now[0] = t
        scaler.sample_once()
    assert len(serving(env, service)) == 2  # 2 x 256 CPU units fill 512
    load(env, service, 4)
    for t in (2.0, 3.0, 4.0, 5.0):
        now[0] = t
        scaler.sample_once()
    assert len(serving(env, service)) == 2
    refusals = [line for line in events_lines(env, service) if "refused" in line]
    assert len(refusals) == 1 and "512 CPU units" in refusals[0]
    refused = [e for e in scaling_events(env, service) if "wantedInstanceCount" in e]
    assert len(refused) == 1 and refused[0]["severity"] == "ERROR"


def test_new_instances_stay_out_of_the_route_until_healthy(tmp_path):
    env = Env(tmp_path, scale_out_window=1.0)
    service, scaler, now = scaled_env(env, MaxConcurrency=1, MinSize=1, MaxSize=2)
    seen_during_health: list[tuple[str, ...]] = []

    def while_probing(host):
        env.routes.apply()  # a reconcile pass while the new one boots
        seen_during_health.append(env.router.routes[0].upstreams)
        assert not any(up.startswith(f"{host}:") for up in env.router.routes[0].upstreams)

    env.while_probing = while_probing
    load(env, service, 2)
    for t in (0.0, 1.0):
        now[0] = t
        scaler.sample_once()
    assert seen_during_health and len(seen_during_health[0]) == 1
    assert len(env.router.routes[0].upstreams) == 2


def test_busy_services_are_not_scaled(tmp_path):
    env = Env(tmp_path, scale_out_window=1.0)
    service, scaler, now = scaled_env(env, MaxConcurrency=1, MinSize=1, MaxSize=3)
    env.services.start_deployment(service.arn)
    load(env, service, 3)
    for t in (0.0, 1.0, 2.0):
        now[0] = t
        scaler.sample_once()
    assert len(serving(env, service)) == 1


@pytest.mark.parametrize(
    ("member", "value"),
    [("MaxConcurrency", 0), ("MaxConcurrency", 201), ("MinSize", 0), ("MinSize", 26)],
)
def test_out_of_range_auto_scaling_values_are_refused_by_the_model(member, value):
    params = {"AutoScalingConfigurationName": "edge", member: value}
    with pytest.raises(InvalidRequest, match=member):
        validate_input("CreateAutoScalingConfiguration", params)


def test_a_start_that_fails_midway_leaves_nothing_half_joined(tmp_path):
    env = Env(tmp_path, scale_out_window=1.0)
    service, scaler, now = scaled_env(env, MaxConcurrency=1, MinSize=1, MaxSize=3)
    real_start = env.backend.start_instance
    calls = []

    def second_fails(spec):
        calls.append(spec)
        if len(calls) == 2:
            raise BackendError("no free address left")
        return real_start(spec)

    env.backend.start_instance = second_fails
    load(env, service, 3)
    for t in (0.0, 1.0):
        now[0] = t
        scaler.sample_once()
    assert len(calls) == 2
    assert env.routes._joining == set()
    assert len(env.backend.list_instances()) == 1  # the first one was stopped again
    assert any("no free address" in line for line in events_lines(env, service))
