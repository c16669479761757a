"""Traffic between revisions through the real data plane (HAProxy, the default): a
rollout in steps under steady load, a bad revision rolled back at its first step,
revision tags with URLs of their own, a split by hand, and the bad input refused with
the routing untouched. Answers are counted by revision: the app's /env/APP_VERSION."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest

from slipway.client import ApiError, Client
from testkit.harness import (
    Load,
    image_source,
    operation_end,
    service_containers,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e
# The latency bound is the unit tests' to check: on a shared CI host a new revision's
# first seconds can be slow enough to trip it, and these tests are about the split.
AGENT_SETTINGS = {
    "rollout_min_requests": 10,
    "rollout_max_5xx_points": 5,
    "rollout_p99_slack_ms": 2000,
}
POLICY = "10,50,100/8s"


def version_load(agent, service: str) -> Load:
    """Three clients asking /env/APP_VERSION, answers counted by revision."""
    return Load(agent, service, path="/env/APP_VERSION", by="body", pause=0.005)


def slipway_client(agent) -> Client:
    return Client(agent.endpoint, *agent.credentials())


def events(agent, arn: str) -> list[tuple[float, str]]:
    answer = slipway_client(agent).signed("GET", "/slipway/v1/logs", params={"ServiceArn": arn})
    return [(e["Timestamp"], e["Message"]) for e in answer["Events"]]


def when(agent, arn: str, text: str) -> float:
    found = [t for t, m in events(agent, arn) if text in m]
    assert found, f"no event says {text!r}: {events(agent, arn)}"
    return found[-1]


@pytest.fixture
def versioned(agent, hello_image, push_variant):
    """A RUNNING service answering APP_VERSION 1, and a way to deploy another version."""

    def create(name: str, **extra: object) -> tuple[str, str]:
        push_variant(hello_image, APP_VERSION="1")
        client = agent.client()
        arn = client.create_service(
            ServiceName=name, SourceConfiguration=image_source(hello_image), **extra
        )["Service"]["ServiceArn"]
        wait_status(client, arn, "RUNNING")
        return arn, hello_image

    return create


def deploy(agent, arn: str, image: str, push_variant, **env: str) -> dict:
    push_variant(image, **env)
    client = agent.client()
    op = operation_end(client, arn, client.start_deployment(ServiceArn=arn)["OperationId"], 180)
    wait_status(client, arn, "RUNNING")
    return op


def test_rollout_in_steps_under_load_fails_no_request(agent, versioned, push_variant):
    arn, image = versioned("steps", Tags=[{"Key": "slipway:rollout", "Value": POLICY}])
    with version_load(agent, "steps") as load:
        wait_for(lambda: len(load.answers) > 50, 30, "the load to run")
        op = deploy(agent, arn, image, push_variant, APP_VERSION="2")
        time.sleep(1)
    assert op["Status"] == "SUCCEEDED", op
    assert load.errors == [] and load.failed() == []
    assert agent.get("steps", "/env/APP_VERSION").text.strip() == "2"
    for number, share in ((1, 10), (2, 50)):
        # From one second after the step routed (the router moved) to its verdict.
        start = when(agent, arn, f"rollout step {number} of 3") + 1.0
        end = when(agent, arn, f"rollout step {number} ({share}%) within bounds")
        counts = load.between(start, end)
        total = counts["1"] + counts["2"]
        assert total > 50, counts
        assert abs(100 * counts["2"] / total - share) <= 5, (share, counts)
    assert when(agent, arn, "rollout step 3: revision")


def test_bad_revision_is_rolled_back_at_the_first_step(agent, versioned, push_variant):
    arn, image = versioned("badstep", Tags=[{"Key": "slipway:rollout", "Value": POLICY}])
    service_id = agent.client().describe_service(ServiceArn=arn)["Service"]["ServiceId"]
    with version_load(agent, "badstep"):
        op = deploy(agent, arn, image, push_variant, APP_VERSION="bad", FAIL_EVERY="3")
    said = [m for _, m in events(agent, arn) if "rollout" in m or "rolled back" in m]
    assert (op["Type"], op["Status"]) == ("START_DEPLOYMENT", "FAILED"), said
    said = [m for _, m in events(agent, arn) if "rolled back at step 1 (10%)" in m]
    assert said and "5xx rate" in said[0], events(agent, arn)
    assert not any("rollout step 2 of 3" in m for _, m in events(agent, arn))
    assert agent.get("badstep", "/env/APP_VERSION").text.strip() == "1"
    wait_for(lambda: len(service_containers(service_id)) == 1, 30, "the bad instance to stop")


def test_tagged_revision_has_its_own_url_and_bad_input_is_refused(agent, versioned, push_variant):
    arn, image = versioned("tagged")
    deploy(agent, arn, image, push_variant, APP_VERSION="2")
    slipway = slipway_client(agent)
    listed = slipway.signed("GET", "/slipway/v1/revisions", params={"ServiceArn": arn})
    old = next(
        r["Revision"] for r in listed["Revisions"] if r["Revision"] != listed["RunningRevision"]
    )
    new = listed["RunningRevision"]

    done = agent.cli("revisions", "tag", "tagged", old[:19], "blue")
    assert "blue--tagged.localhost" in done.stdout
    assert agent.get("blue--tagged", "/env/APP_VERSION").text.strip() == "1"
    assert agent.get("tagged", "/env/APP_VERSION").text.strip() == "2"
    time.sleep(4)  # reconcile passes: the tagged revision's instance is no stray
    assert agent.get("blue--tagged", "/env/APP_VERSION").text.strip() == "1"
    assert "Tag blue:" in agent.cli("services", "describe", "tagged").stdout

    # A split by hand: 30% to the old revision, 70% to the live one.
    agent.cli("traffic", "tagged", "--to", f"{old[:19]}=30", "--to", f"{new[:19]}=70")
    with httpx.Client(headers={"Host": f"tagged.localhost:{agent.http_port}"}) as http:
        counts = Counter(
            http.get(f"http://127.0.0.1:{agent.http_port}/env/APP_VERSION").text.strip()
            for _ in range(200)
        )
    assert abs(counts["1"] - 60) <= 10 and counts["1"] + counts["2"] == 200, counts

    # Bad input: refused, naming the problem; the routing as it was.
    agent.client().create_service(ServiceName="other", SourceConfiguration=image_source(image))
    refused = {
        ("traffic", "tagged", "--to", f"{new[:19]}=60"): "sum to 60, not 100",
        ("traffic", "tagged", "--to", "sha256:ffff=100"): "unknown revision sha256:ffff",
        ("traffic", "tagged", "--to", "latest"): "REVISION=PERCENT",
        ("revisions", "tag", "tagged", new[:19], "Not_A_Label"): "not a DNS label",
        ("revisions", "tag", "tagged", new[:19], "other"): "clashes with service other",
        ("revisions", "tag", "tagged", "sha256:ffff", "green"): "unknown revision",
    }
    for args, message in refused.items():
        done = agent.cli(*args, ok=False)
        assert message in done.stderr, (args, done.stderr)
    with pytest.raises(ApiError, match="steps must rise"):
        slipway.call(
            "TagResource", ResourceArn=arn, Tags=[{"Key": "slipway:rollout", "Value": "50,10/5s"}]
        )
    shown = slipway.signed("GET", "/slipway/v1/traffic", params={"ServiceArn": arn})
    assert sorted(t["Percent"] for t in shown["Traffic"]) == [30, 70]
    assert [t["Tag"] for t in shown["RevisionTags"]] == ["blue"]
    assert agent.get("blue--tagged", "/env/APP_VERSION").text.strip() == "1"

    agent.cli("traffic", "tagged", "--to-latest")
    assert {agent.get("tagged", "/env/APP_VERSION").text.strip() for _ in range(20)} == {"2"}
    assert agent.get("blue--tagged", "/env/APP_VERSION").text.strip() == "1"

    client = agent.client()
    client.pause_service(ServiceArn=arn)
    wait_status(client, arn, "PAUSED")
    done = agent.cli("traffic", "tagged", "--to", f"{new[:19]}=100", ok=False)
    assert "is paused" in done.stderr
