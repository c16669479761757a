"""A data plane that cannot run, through the real parts: with HAProxy missing
(``haproxy_bin`` naming no program) the agent still starts, Caddy keeps ``http_port``
so every service answers, and /healthz and the service's events stream say which part
failed and why."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from slipway.cli import app
from testkit.harness import image_source, wait_for, wait_status

pytestmark = pytest.mark.e2e

AGENT_SETTINGS = {"data_plane": "haproxy", "haproxy_bin": "no-such-haproxy"}


def test_without_haproxy_caddy_serves_and_the_agent_says_why(agent, hello_image):
    client = agent.client()
    arn = client.create_service(
        ServiceName="stranded", SourceConfiguration=image_source(hello_image)
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    answer = agent.get("stranded")
    assert answer.status_code == 200 and "Hello" in answer.text

    def health() -> dict:
        return httpx.get(f"{agent.endpoint}/healthz", timeout=5).json()

    wait_for(lambda: health()["status"] == "degraded", 30, "/healthz to say degraded")
    (problem,) = [p for p in health()["problems"] if p.startswith("data plane:")]
    assert "HAProxy is not installed" in problem and "no-such-haproxy" in problem
    assert "Caddy serves http_port meanwhile" in problem

    def events() -> str:
        return CliRunner().invoke(app, ["logs", "stranded"], env=agent.env).output

    wait_for(lambda: "The data plane failed" in events(), 30, "the failure in the events")
    assert "HAProxy is not installed" in events()
    assert agent.get("stranded").status_code == 200  # still answering
