"""The upkeep's decisions about live instances, on plain data."""

from __future__ import annotations

import dataclasses

from slipway.backends import Instance
from slipway.upkeep import CRASH_LOOP, Upkeep


def inst(n: int, state: str = "running", restarts: int = 0, code: int | None = None) -> Instance:
    return Instance(
        id=f"c{n}",
        name=f"slipway-app-dep-{n}",
        service_id="s",
        deployment_id="dep",
        revision="r",
        state=state,
        host_port=40000 + n if state == "running" else None,
        exit_code=code,
        started_at=None,
        restart_count=restarts,
    )


def test_quiet_when_all_is_well():
    upkeep = Upkeep()
    verdict = upkeep.judge([inst(1)], {"c1": True}, 1, 3)
    assert verdict.reports == () and verdict.replace == () and verdict.missing == 0


def test_each_crash_reported_once_and_the_loop_once():
    upkeep = Upkeep()
    upkeep.judge([inst(1)], {}, 1, 3)
    verdict = upkeep.judge([inst(1, restarts=1, code=3)], {}, 1, 3)
    assert verdict.reports == (
        "instance slipway-app-dep-1 exited with exit code 3; the engine restarted it (restart 1)",
    )
    assert upkeep.judge([inst(1, restarts=1, code=3)], {}, 1, 3).reports == ()
    looping = [upkeep.judge([inst(1, restarts=n)], {}, 1, 3) for n in range(2, CRASH_LOOP + 3)]
    loop_reports = [r for v in looping for r in v.reports if "crash loop" in r]
    assert len(loop_reports) == 1


def test_unhealthy_after_threshold_is_replaced():
    upkeep = Upkeep()
    live = [inst(1), inst(2)]
    for _ in range(2):
        assert upkeep.judge(live, {"c1": False, "c2": True}, 2, 3).replace == ()
    verdict = upkeep.judge(live, {"c1": False, "c2": True}, 2, 3)
    assert [i.id for i in verdict.replace] == ["c1"]
    assert verdict.missing == 0
    # A success in between starts the count again.
    upkeep.judge(live, {"c1": False}, 2, 3)
    upkeep.judge(live, {"c1": True}, 2, 3)
    assert upkeep.judge(live, {"c1": False}, 2, 3).replace == ()


def test_missing_instances_are_started_unless_the_engine_is_restarting_them():
    upkeep = Upkeep()
    assert upkeep.judge([], {}, 2, 3).missing == 2
    assert upkeep.judge([inst(1)], {}, 2, 3).missing == 1
    restarting = dataclasses.replace(inst(2), state="restarting")
    assert upkeep.judge([inst(1), restarting], {}, 2, 3).missing == 0


def test_an_instance_moved_off_a_lost_node_is_said_once_naming_both_nodes():
    upkeep = Upkeep()
    on_n3 = dataclasses.replace(inst(1), node="slwc-n3")
    upkeep.judge([on_n3], {}, 1, 3)
    lost = dataclasses.replace(on_n3, state="restarting", host_port=None)
    assert upkeep.judge([lost], {}, 1, 3).reports == ()  # the engine is moving it
    moved = dataclasses.replace(inst(1, restarts=1), node="slwc-n1")
    assert upkeep.judge([moved], {}, 1, 3).reports == (
        "instance slipway-app-dep-1 left node slwc-n3; the engine runs it on node slwc-n1"
        " now, and its route follows",
    )
    assert upkeep.judge([moved], {}, 1, 3).reports == ()
