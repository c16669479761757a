"""Auto scaling through the real parts: slow requests through Caddy make the service
scale out to MaxSize, and back to MinSize when they stop, without a failed request."""

from __future__ import annotations

from collections import Counter

import pytest
from typer.testing import CliRunner

from slipway.cli import app
from testkit.harness import Load, live_containers, scaled_service, wait_for

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {
    "metrics_interval": 0.5,
    "metrics_stats_interval": 1,  # ActiveInstances is set with the docker stats
    "scale_interval": 0.5,
    "scale_out_window": 2,
    "scale_in_cooldown": 5,
    "drain_seconds": 5,
}


def active_instances(agent, service: str) -> float:
    """The ActiveInstances gauge on /metrics."""
    return agent.metric("slipway_active_instances", service=service)


def test_concurrency_scales_out_to_max_and_back_to_min(agent, hello_image):
    client = agent.client()
    service = scaled_service(client, "elastic", hello_image, MaxConcurrency=2, MinSize=1, MaxSize=4)
    arn, service_id = service["ServiceArn"], service["ServiceId"]
    asc = service["AutoScalingConfigurationSummary"]
    assert len(live_containers(service_id)) == 1
    listed = client.list_services_for_auto_scaling_configuration(
        AutoScalingConfigurationArn=asc["AutoScalingConfigurationArn"]
    )
    assert listed["ServiceArnList"] == [arn]

    with Load(agent, "elastic", workers=8, slow_ms=1500) as load:
        wait_for(lambda: len(live_containers(service_id)) == 4, 60, "four instances")
        # Four instances answer: every one of them is in the route.
        mark = len(load.answers)
        wait_for(lambda: len(load.instances_since(mark)) == 4, 30, "answers from all four")
        wait_for(lambda: len(load.answers) > mark + 24, 30, "more answers")
        assert len(live_containers(service_id)) == 4  # never beyond MaxSize
        wait_for(lambda: active_instances(agent, "elastic") == 4, 10, "ActiveInstances 4")
    assert load.errors == []
    assert Counter(status for status, _ in load.answers) == {200: len(load.answers)}

    wait_for(lambda: len(live_containers(service_id)) == 1, 60, "back to MinSize")
    wait_for(lambda: active_instances(agent, "elastic") == 1, 10, "ActiveInstances 1")
    assert agent.get("elastic").status_code == 200
    logs = CliRunner().invoke(app, ["logs", "elastic"], env=agent.env).output
    assert "Scaled out from 1 to" in logs and "to 1 instance(s)" in logs
    events = CliRunner().invoke(app, ["events", "elastic"], env=agent.env).output
    assert "Scaled out from 1 to" in events and "Scaled in from" in events
