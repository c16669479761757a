"""The console's services list with 100 services: how long the agent takes to render
it server-side, and what the page weighs with its scripts and styles.

Usage: .venv/bin/python bench/console.py [--services 100] [--rounds 50] [--record]

An agent built from its own Settings in a temporary directory (the real ``Agent``: its
store, rules, Docker engine, metrics; its jobs not started, so nothing deploys) and its
real app (``create_app``), driven in process by Starlette's TestClient: the time is the
agent's own (routing, session, ListServices through the API's calls, the store's
records and tags, the engine's instance listing, the metrics store, Jinja2), with no
socket in between. N services are created through the same rules as CreateService
(``Services.create_service``), each with two tags, from the example image pushed to a
private registry; with no worker running they stay OPERATION_IN_PROGRESS and no
container starts (100 running containers would measure the host, not the page). A
session signed in through the form (the root key) GETs /console/services ``--rounds``
times. Weight: the HTML plus every script and stylesheet it references, as served (no
compression). Goals: median under 200 ms, weight under 200 KB.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import docker
from common import ROOT, record

from slipway.agent import Agent
from slipway.api.app import create_app
from slipway.config import Settings
from testkit.harness import LocalRegistry, image_source, push_image

GOAL_MS = 200
GOAL_KB = 200


def page_weight(http, html: str) -> tuple[int, list[str]]:
    assets = re.findall(r'(?:src|href)="(/console/static/[^"]+)"', html)
    return len(html.encode()) + sum(len(http.get(a).content) for a in assets), assets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    from fastapi.testclient import TestClient

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "registry").mkdir()
        registry = LocalRegistry.start(root / "registry")
        try:
            client = docker.from_env()
            client.images.build(path=str(ROOT / "examples" / "hello"), tag="slipway-bench/hello")
            image = f"{registry.host}/bench/hello:live"
            push_image(client, "slipway-bench/hello", image)
            settings = Settings(
                data_dir=root / "data",
                config_dir=root / "conf",
                caddy_admin="http://127.0.0.1:9",  # never asked: the jobs do not run
                service_quota=args.services + 10,
                insecure_registries=(registry.host,),
            )
            agent = Agent(settings)
            key_id, secret = agent.access.ensure_root_key() or ("", "")
            for i in range(args.services):
                agent.services.create_service(
                    {
                        "ServiceName": f"svc-{i:03d}",
                        "SourceConfiguration": image_source(image),
                        "Tags": [
                            {"Key": "team", "Value": f"t{i % 7}"},
                            {"Key": "env", "Value": "bench"},
                        ],
                    }
                )
            http = TestClient(create_app(agent))
            http.post("/console/signin", data={"key_id": key_id, "secret": secret})
            first = http.get("/console/services")
            rows = first.text.count("<tr data-service=")
            assert rows == args.services, f"{rows} rows listed ({first.status_code})"
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                assert http.get("/console/services").status_code == 200
                times.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            http.get("/console/services", params={"tag": "team=t3"})
            filtered_ms = (time.perf_counter() - start) * 1000
            weight, assets = page_weight(http, first.text)
            link = re.search(r'href="(/console/services/svc-000/[0-9a-f]+)"', first.text)
            assert link, "no link to a service"
            metrics_weight, _ = page_weight(http, http.get(f"{link.group(1)}?tab=metrics").text)
        finally:
            registry.stop()

    median = statistics.median(times)
    p95 = sorted(times)[max(int(len(times) * 0.95) - 1, 0)]
    table = "\n".join(
        [
            f"### Console services list, {time.strftime('%Y-%m-%d')}: {args.services} "
            f"services, {args.rounds} renders, 2 cores shared with other helpers' tests",
            "",
            "| services | median ms | p95 ms | max ms | tag filter ms | list page KB "
            "(HTML + scripts + CSS) | metrics tab KB (with uPlot) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {args.services} | {median:.1f} | {p95:.1f} | {max(times):.1f} | "
            f"{filtered_ms:.1f} | {weight / 1024:.1f} | {metrics_weight / 1024:.1f} |",
            "",
            f"Assets of the list: {', '.join(a.rsplit('/', 1)[1] for a in assets)}.",
            f"Goals: median < {GOAL_MS} ms: {'met' if median < GOAL_MS else 'missed'}; "
            f"page < {GOAL_KB} KB: {'met' if weight / 1024 < GOAL_KB else 'missed'}.",
        ]
    )
    print(table)
    if args.record:
        record("bench/console.py", table, __doc__.split("\n\n")[2])


if __name__ == "__main__":
    main()
