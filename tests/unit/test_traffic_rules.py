"""The rules of traffic splits, revision tags and rollout steps (``traffic.py``), the
routes a split gives (``operations/routes.py``), and how each router carries weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipway.backends import Instance
from slipway.config import Settings
from slipway.errors import InvalidRequest
from slipway.models import ImageSource, ServiceSpec, SourceConfig
from slipway.operations.gradual import figures
from slipway.operations.reconcile import stray_instances
from slipway.operations.routes import desired_routes
from slipway.records import Service
from slipway.routing.caddyconfig import Route, _handlers
from slipway.routing.haproxyconfig import SERVER_OPTIONS, Server, parse_servers, plan
from slipway.routing.haproxytraffic import UpstreamServed, parse_server_counters
from slipway.tags import tag_dict
from slipway.traffic import (
    Bounds,
    Figures,
    Split,
    check_tag,
    instance_weights,
    judge,
    parse_policy,
    parse_shares,
    resolve_shares,
)

DEPLOYMENTS = {"d-live": "sha256:aaaa1111", "d-old": "sha256:bbbb2222"}


def test_shares_must_name_revisions_once_and_sum_to_100():
    assert parse_shares(["sha256:aaaa=10", "sha256:bbbb=90"]) == {
        "sha256:aaaa": 10,
        "sha256:bbbb": 90,
    }
    for entries, message in (
        (["a=10", "b=80"], "sum to 90, not 100"),
        (["a=10", "a=90"], "named twice"),
        (["a"], "REVISION=PERCENT"),
        (["a=-5", "b=105"], "REVISION=PERCENT"),
        (["a=101"], "0 to 100"),
        ([], "at least one"),
    ):
        with pytest.raises(InvalidRequest, match=message):
            parse_shares(entries)


def test_shares_resolve_by_prefix_to_deployments():
    assert resolve_shares({"sha256:aaaa": 30, "sha256:bbbb2222": 70}, DEPLOYMENTS) == {
        "d-live": 30,
        "d-old": 70,
    }
    with pytest.raises(InvalidRequest, match="unknown revision sha256:cccc; this service has"):
        resolve_shares({"sha256:cccc": 100}, DEPLOYMENTS)
    with pytest.raises(InvalidRequest, match="ambiguous"):
        resolve_shares({"sha256:": 100}, DEPLOYMENTS)
    with pytest.raises(InvalidRequest, match="named twice"):
        resolve_shares({"sha256:aaaa": 50, "sha256:aaaa1111": 50}, DEPLOYMENTS)


def test_tags_are_dns_labels_that_clash_with_no_service():
    assert check_tag("blue", "web", ["web", "api"]) == "blue--web"
    for tag, message in (
        ("Blue", "not a DNS label"),
        ("blue_1", "not a DNS label"),
        ("-blue", "not a DNS label"),
        ("a--b", "not a DNS label"),
        ("x" * 60, "longer than a DNS label"),
        ("api", "clashes with service api"),
    ):
        with pytest.raises(InvalidRequest, match=message):
            check_tag(tag, "web", ["web", "api"])
    with pytest.raises(InvalidRequest, match="clashes with service blue--web"):
        check_tag("blue", "web", ["blue--web"])


def test_rollout_policy_reads_steps_and_a_pause():
    policy = parse_policy("10,50,100/60s")
    assert (policy.steps, policy.pause) == ((10, 50, 100), 60.0)
    assert parse_policy("25, 100 / 2m").pause == 120.0
    for value, message in (
        ("10,50/60s", "last step must be 100"),
        ("50,10,100/60s", "steps must rise"),
        ("0,100/1s", "steps must rise"),
        ("10,50,100", "like 10,50,100/60s"),
        ("10,x,100/5s", "like 10,50,100/60s"),
        ("10,100/soon", "like 10,50,100/60s"),
    ):
        with pytest.raises(InvalidRequest, match=message):
            parse_policy(value)
    with pytest.raises(InvalidRequest, match="Tags\\[0\\]: slipway:rollout"):
        tag_dict([{"Key": "slipway:rollout", "Value": "10/5s"}])


def test_weights_give_each_deployment_its_share_over_its_instances():
    weights = instance_weights({"a": 10, "b": 90}, {"a": ["x:1"], "b": ["y:1", "z:1"]})
    assert weights == {"x:1": 20, "y:1": 90, "z:1": 90}
    # A deployment with no instance, or at 0 percent, gets none.
    assert instance_weights({"a": 0, "b": 100}, {"a": ["x:1"], "b": []}) == {}


def test_judge_rolls_back_on_5xx_or_p99_and_waits_for_enough_requests():
    bounds = Bounds(max_5xx_points=1.0, max_p99_ratio=2.0, p99_slack_ms=50, min_requests=20)
    old = Figures(1000, 2, (0.01,) * 100)
    assert judge(Figures(100, 1, (0.012,) * 10), old, bounds) is None
    reason = judge(Figures(100, 30, (0.01,) * 10), old, bounds)
    assert reason and "5xx rate was 30.0% (30 of 100) against 0.2%" in reason
    reason = judge(Figures(100, 0, (0.5,) * 10), old, bounds)
    assert reason and "p99 latency was 500 ms against 10 ms" in reason
    assert judge(Figures(10, 10), old, bounds) is None  # too few to judge


def test_figures_are_counter_deltas_per_revision():
    before = {"x:1": UpstreamServed(100, 1), "y:1": UpstreamServed(50, 0)}
    after = {"x:1": UpstreamServed(130, 4, (0.1,)), "y:1": UpstreamServed(5, 1)}
    assert figures(before, after, ["x:1"]) == Figures(30, 3, (0.1,))
    assert figures(before, after, ["y:1"]) == Figures(5, 1, ())  # re-added: counts anew


def instance(iid: str, deployment: str, address: str) -> Instance:
    return Instance(
        id=iid,
        name=iid,
        service_id="s1",
        deployment_id=deployment,
        revision="r",
        state="running",
        host_port=int(address.split(":")[1]),
        exit_code=None,
        started_at=None,
        host_ip=address.split(":")[0],
    )


def test_a_split_weights_the_main_route_and_tags_get_hosts():
    spec = ServiceSpec(source=SourceConfig(image=ImageSource("127.0.0.1:5000/hello:v1", "ECR")))
    service = Service(
        id="s1",
        name="web",
        arn="arn:web",
        hostname="web",
        status="RUNNING",
        spec=spec,
        created_at=0.0,
        updated_at=0.0,
        live_deployment_id="d-live",
    )
    instances = [
        instance("i1", "d-live", "127.77.0.1:8080"),
        instance("i2", "d-old", "127.77.0.2:8080"),
    ]
    settings = Settings(data_dir=Path("/tmp/x"))
    split = Split({"d-live": 90, "d-old": 10}, {"blue": "d-old"}, DEPLOYMENTS)
    routes = desired_routes([service], instances, settings, splits={"s1": split})
    by_host = {r.host: r for r in routes}
    main = by_host["web.localhost"]
    assert main.upstreams == ("127.77.0.1:8080", "127.77.0.2:8080")
    assert dict(main.weights) == {"127.77.0.1:8080": 180, "127.77.0.2:8080": 20}
    assert by_host["blue--web.localhost"].upstreams == ("127.77.0.2:8080",)
    # Without a split the route is the live deployment's, unweighted.
    (plain,) = desired_routes([service], instances, settings)
    assert (plain.upstreams, plain.weights) == (("127.77.0.1:8080",), ())
    # A kept deployment's instances are no strays; others are.
    assert stray_instances([service], instances, set(), {"s1": split.kept()}) == []
    assert [i.id for i in stray_instances([service], instances, set())] == ["i2"]


def test_haproxy_adds_weighted_servers_and_moves_weights():
    route = Route(
        "web.localhost",
        ("127.77.0.1:8080", "127.77.0.2:8080"),
        weights=(("127.77.0.1:8080", 180), ("127.77.0.2:8080", 20)),
    )
    have = [Server("s0", "127.77.0.1_8080", "127.77.0.1:8080", True, 100)]
    commands = plan([route], {"web.localhost": "s0"}, have, map_file=Path("/m"), backends=2)
    assert commands == [
        "set weight s0/127.77.0.1_8080 180",
        f"add server s0/127.77.0.2_8080 127.77.0.2:8080 weight 20 {SERVER_OPTIONS}",
        "enable server s0/127.77.0.2_8080",
    ]
    state = (
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight"
        " ...\n3 s0 1 127.77.0.1_8080 127.77.0.1 2 0 20 20 1 0 0 0 0 0 0 0 - 8080 - 0 0 - - 0\n"
    )
    assert parse_servers(state)[0].weight == 20


def test_haproxy_server_counters_by_address():
    csv = (
        "# pxname,svname,req_tot,hrsp_5xx,addr\n"
        "s0,FRONTEND,9,9,\ns0,127.77.0.1_8080,40,3,127.77.0.1:8080\ns0,BACKEND,40,3,\n"
    )
    assert parse_server_counters(csv) == {"127.77.0.1:8080": (40, 3)}


def test_caddy_lists_upstreams_in_proportion_without_route_dns():
    route = Route("web.localhost", ("a:1", "b:1"), weights=(("a:1", 20), ("b:1", 180)))
    (proxy,) = _handlers(route, "127.0.0.1:53")
    dials = [u["dial"] for u in proxy["upstreams"]]
    assert dials.count("a:1") == 1 and dials.count("b:1") == 9
    assert "dynamic_upstreams" not in proxy
