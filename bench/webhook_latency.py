"""From a registry notification to the new revision answering through Caddy, for an
image service: how much of that is slipway's own work, and how much is the pull and
the app's boot.

Usage: .venv/bin/python bench/webhook_latency.py [--rounds N] [--record]

It starts its own registry, Caddy and agent (as the e2e tests do), deploys the
example app, then per round pushes a new image under the same tag, posts the
registry's notification to /hooks/registry, and polls the service until it answers
with the new revision. The deployment log's [AppRunner] lines split the time:
pull (Pulling -> Starting), boot (Starting -> health checks passed), agent (the
rest: webhook handling, queueing, the route switch, Caddy).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
import uuid

import docker
import httpx
from common import example_service, local_stack, record

from testkit.harness import AgentProcess, push_image, wait_for, wait_status

TOKEN = "bench-" + uuid.uuid4().hex


def notify(agent: AgentProcess, host: str, repository: str, tag: str, digest: str) -> None:
    envelope = {
        "events": [
            {
                "id": str(uuid.uuid4()),
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    "digest": digest,
                    "repository": repository,
                    "tag": tag,
                    "url": f"http://{host}/v2/{repository}/manifests/{digest}",
                },
                "request": {"host": host},
            }
        ]
    }
    answer = httpx.post(
        f"{agent.endpoint}/hooks/registry",
        json=envelope,
        headers={
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/vnd.docker.distribution.events.v1+json",
        },
    )
    answer.raise_for_status()


def steps(agent: AgentProcess, service_arn: str) -> dict[str, float]:
    """Times of the newest deployment's [AppRunner] steps, from its log."""
    from slipway.client import Client

    key_id, secret = agent.credentials()
    client = Client(agent.endpoint, key_id, secret)
    op = client.call("ListOperations", ServiceArn=service_arn)["OperationSummaryList"][0]
    page = client.signed(
        "GET",
        "/slipway/v1/logs",
        params={"ServiceArn": service_arn, "Stream": f"deployment/{op['Id']}"},
    )
    marks = {}
    for event in page["Events"]:
        for name, prefix in (
            ("pull", "[AppRunner] Pulling"),
            ("start", "[AppRunner] Starting"),
            ("healthy", "[AppRunner] Health checks passed"),
        ):
            if event["Message"].startswith(prefix):
                marks[name] = event["Timestamp"]
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()

    client = docker.from_env()
    rows = []
    with (
        local_stack(registry_webhook_token=TOKEN, drain_seconds=0) as (registry, _, agent),
        example_service(
            client,
            registry,
            agent,
            "bench",
            "bench/hello",
            auto_deployments=True,
            Tags=[{"Key": "slipway:poll-interval", "Value": "1h"}],
        ) as (image, arn),
    ):
        api = agent.client()
        for round_ in range(args.rounds):
            version = f"r{round_}-{uuid.uuid4().hex[:6]}"
            local = f"slipway-bench/variant:{version}"
            client.images.build(
                fileobj=io.BytesIO(f"FROM {image}\nENV APP_VERSION={version}".encode()),
                tag=local,
            )
            digest = push_image(client, local, image)
            sent = time.time()
            notify(agent, registry.host, "bench/hello", "live", digest)
            wait_for(
                lambda v=version: agent.get("bench", "/env/APP_VERSION").text.strip() == v,
                60,
                "the new revision",
            )
            serving = time.time()
            wait_status(api, arn, "RUNNING")
            marks = steps(agent, arn)
            total = serving - sent
            pull = marks["start"] - marks["pull"]
            boot = marks["healthy"] - marks["start"]
            rows.append({"total": total, "pull": pull, "boot": boot})

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    agent_time = [r["total"] - r["pull"] - r["boot"] for r in rows]
    lines = [
        f"### Webhook to serving, {time.strftime('%Y-%m-%d')}: image service,"
        f" {len(rows)} rounds, medians",
        "",
        "| notification -> serving s | pull s | app boot + health s | agent s | agent share |",
        "| ---: | ---: | ---: | ---: | ---: |",
        f"| {median('total'):.2f} | {median('pull'):.2f} | {median('boot'):.2f} |"
        f" {statistics.median(agent_time):.2f} |"
        f" {statistics.median(agent_time) / median('total'):.0%} |",
    ]
    table = "\n".join(lines)
    print(table)
    if args.record:
        record("bench/webhook_latency.py", table)


if __name__ == "__main__":
    main()
