"""The console's services list with 100 services: how long the agent takes to answer
it (rendered server-side), and what the page weighs with its scripts and styles.

Usage: .venv/bin/python bench/console.py [--services 100] [--rounds 50] [--record]

A private registry, Caddy and agent (``local_stack``, as the e2e tests make them); N
services are created through the API, each with two tags, from an image the registry
does not have, so they end CREATE_FAILED at once and no container runs: the list reads
the same calls and stores for a failed service as for a running one (ListServices, the
store's records and tags, the backend's instance listing, the metrics store), and 100
running containers would measure the host rather than the page. A signed-in session
(the root key, through the sign-in form) then GETs /console/services ``--rounds`` times
over one keep-alive connection on loopback: the round trip bounds the server's render
time from above. Weight: the HTML plus every script and stylesheet it references, as
served (no compression). Goals: median under 200 ms, weight under 200 KB.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import httpx
from common import local_stack, record

from testkit.harness import image_source, wait_for

GOAL_MS = 200
GOAL_KB = 200


def sign_in(endpoint: str, key_id: str, secret: str) -> httpx.Client:
    http = httpx.Client(base_url=endpoint, timeout=30)
    answer = http.post("/console/signin", data={"key_id": key_id, "secret": secret})
    answer.raise_for_status()
    assert "slipway_console" in http.cookies, "sign-in set no session cookie"
    return http


def page_weight(http: httpx.Client, html: str) -> tuple[int, list[str]]:
    assets = re.findall(r'(?:src|href)="(/console/static/[^"]+)"', html)
    return len(html.encode()) + sum(len(http.get(a).content) for a in assets), assets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    with local_stack(service_quota=args.services + 10) as (registry, _caddy, agent):
        api = agent.client()
        missing = f"{registry.host}/bench/absent:latest"
        for i in range(args.services):
            api.create_service(
                ServiceName=f"svc-{i:03d}",
                SourceConfiguration=image_source(missing),
                Tags=[{"Key": "team", "Value": f"t{i % 7}"}, {"Key": "env", "Value": "bench"}],
            )

        def settled() -> bool:
            listed = api.list_services()["ServiceSummaryList"]
            return all(s["Status"] != "OPERATION_IN_PROGRESS" for s in listed)

        wait_for(settled, timeout=600, what="every service's create to end")
        http = sign_in(agent.endpoint, *agent.credentials())
        first = http.get("/console/services")
        first.raise_for_status()
        rows = first.text.count("<tr data-service=")
        assert rows == args.services, f"{rows} rows listed"
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            http.get("/console/services").raise_for_status()
            times.append((time.perf_counter() - start) * 1000)
        filtered_start = time.perf_counter()
        http.get("/console/services", params={"tag": "team=t3"}).raise_for_status()
        filtered_ms = (time.perf_counter() - filtered_start) * 1000
        weight, assets = page_weight(http, first.text)
        metrics_page = http.get(f"/console/services/svc-000/{_service_id(api, 'svc-000')}")
        metrics_html = http.get(f"{metrics_page.url.path}?tab=metrics").text
        metrics_weight, _ = page_weight(http, metrics_html)

    median = statistics.median(times)
    p95 = sorted(times)[int(len(times) * 0.95) - 1]
    table = "\n".join(
        [
            f"### Console services list, {time.strftime('%Y-%m-%d')}: {args.services} "
            f"services, {args.rounds} GETs, 2 cores shared with other work",
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


def _service_id(api, name: str) -> str:
    listed = api.list_services()["ServiceSummaryList"]
    return next(s["ServiceId"] for s in listed if s["ServiceName"] == name)


if __name__ == "__main__":
    main()
