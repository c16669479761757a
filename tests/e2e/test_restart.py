"""kill -9 of the agent and a restart of Caddy leave apps serving; the agent picks up
where it was cut off."""

from __future__ import annotations

import time

import pytest

from testkit.harness import image_source, operations, wait_for, wait_status

pytestmark = pytest.mark.e2e


# Slow enough health checks that a kill lands while the deployment is under way.
SLOW_HEALTH = {"Protocol": "HTTP", "Path": "/health", "Interval": 2, "HealthyThreshold": 4}


def test_kill_9_keeps_apps_serving_and_resumes_operations(agent, hello_image, push_variant):
    client = agent.client()
    arn = client.create_service(
        ServiceName="survivor",
        SourceConfiguration=image_source(hello_image),
        HealthCheckConfiguration=SLOW_HEALTH,
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")

    agent.kill()
    for _ in range(5):
        assert agent.get("survivor").status_code == 200
        time.sleep(0.2)

    agent.start()
    client = agent.client()
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING"
    assert agent.get("survivor").status_code == 200

    # Cut a deployment off in the middle: the next agent finishes it.
    push_variant(hello_image, APP_VERSION="killed")
    op_id = client.start_deployment(ServiceArn=arn)["OperationId"]
    wait_for(
        lambda: operations(client, arn)[0]["Status"] == "IN_PROGRESS", 30, "deployment started"
    )
    agent.kill()
    assert agent.get("survivor").status_code == 200
    agent.start()
    client = agent.client()
    wait_status(client, arn, "RUNNING")
    first = operations(client, arn)[0]
    assert (first["Id"], first["Status"]) == (op_id, "SUCCEEDED")
    assert agent.get("survivor", "/env/APP_VERSION").text.strip() == "killed"
    assert "restart" in agent.log_text()


def test_caddy_restart_gets_routes_back(agent, hello_image):
    client = agent.client()
    arn = client.create_service(
        ServiceName="routed", SourceConfiguration=image_source(hello_image)
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")
    assert agent.get("routed").status_code == 200

    agent.caddy.restart()
    wait_for(lambda: agent.get("routed").status_code == 200, 20, "routes re-pushed to Caddy")
