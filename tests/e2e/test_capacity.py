"""The host capacity cap through the real parts: a scale-out past what the instances
may reserve stops at the cap and is refused with an event, while requests keep being
answered."""

from __future__ import annotations

import re

import httpx
import pytest
from typer.testing import CliRunner

from slipway.cli import app
from testkit.harness import Load, live_containers, scaled_service, wait_for

pytestmark = pytest.mark.e2e
# Room for two instances of 256 CPU units, whatever this host has.
AGENT_SETTINGS = {
    "scale_interval": 0.5,
    "scale_out_window": 1,
    "scale_in_cooldown": 5,
    "capacity_cpu": 512,
}


def test_scale_out_stops_at_the_host_capacity_with_an_event(agent, hello_image):
    client = agent.client()
    service = scaled_service(client, "capped", hello_image, MaxConcurrency=1, MinSize=1, MaxSize=4)
    service_id = service["ServiceId"]

    def events() -> str:
        return CliRunner().invoke(app, ["events", "capped"], env=agent.env).output

    with Load(agent, "capped", workers=4, slow_ms=1500) as load:
        wait_for(lambda: "refused" in events(), 30, "the refusal event")
        wait_for(lambda: len(live_containers(service_id)) == 2, 30, "two instances")
        mark = len(load.answers)
        wait_for(lambda: len(load.answers) > mark + 8, 30, "more answers")
        assert len(live_containers(service_id)) == 2  # never past the cap
    assert load.errors == []
    assert {status for status, _ in load.answers} == {200}
    listing = events()
    assert re.search(r"scaling out to [34] instances refused", listing), listing
    assert "512 CPU units" in listing
    logs = CliRunner().invoke(app, ["logs", "capped"], env=agent.env).output
    assert "refused" in logs
    assert httpx.get(f"{agent.endpoint}/healthz").status_code == 200
