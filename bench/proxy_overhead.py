"""What the route through Caddy costs: latency and throughput of one service's requests
through Caddy versus straight to its container, measured in one run on the same instance.

Usage: .venv/bin/python bench/proxy_overhead.py [--requests N] [--concurrency C] [--record]

It starts its own registry, Caddy and agent (as the e2e tests do), deploys the example
app, and prints a table. --record appends the table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import httpx
from common import example_service, local_stack, record

from slipway.backends import LABEL_SERVICE_NAME


def measure(url: str, host: str | None, requests: int, concurrency: int) -> dict[str, float]:
    headers = {"Host": host} if host else {}
    with httpx.Client(headers=headers, timeout=10) as client:
        for _ in range(50):  # warm up connections and the app
            client.get(url)
        latencies = []
        for _ in range(requests):
            start = time.perf_counter()
            response = client.get(url)
            latencies.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.text

    def worker(count: int) -> int:
        ok = 0
        with httpx.Client(headers=headers, timeout=10) as client:
            for _ in range(count):
                ok += client.get(url).status_code == 200
        return ok

    per_worker = requests // concurrency
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        ok = sum(pool.map(worker, [per_worker] * concurrency))
    elapsed = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "p50": quantiles[49],
        "p95": quantiles[94],
        "p99": quantiles[98],
        "rps": ok / elapsed,
        "errors": per_worker * concurrency - ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()

    client = docker.from_env()
    # The service's default TCP health check and registry polling, as when this was first measured.
    with (
        local_stack() as (registry, caddy, agent),
        example_service(
            client,
            registry,
            agent,
            "bench",
            "bench/hello",
            auto_deployments=True,
            HealthCheckConfiguration={},
        ),
    ):
        (container,) = client.containers.list(filters={"label": f"{LABEL_SERVICE_NAME}=bench"})
        published = container.ports["8080/tcp"][0]  # the instance's own loopback address
        direct = f"http://{published['HostIp']}:{published['HostPort']}/"
        rows = [
            ("direct", measure(direct, None, args.requests, args.concurrency)),
            (
                "caddy",
                measure(
                    f"http://127.0.0.1:{caddy.http_port}/",
                    f"bench.localhost:{caddy.http_port}",
                    args.requests,
                    args.concurrency,
                ),
            ),
        ]

    direct = rows[0][1]
    lines = [
        f"### Proxy overhead, {time.strftime('%Y-%m-%d')}: {args.requests} requests,"
        f" {args.concurrency} concurrent clients",
        "",
        "| path | p50 ms | p95 ms | p99 ms | req/s | errors | p50 vs direct | req/s vs direct |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | {r['rps']:.0f} |"
            f" {r['errors']:.0f} | {r['p50'] / direct['p50']:.2f}x |"
            f" {r['rps'] / direct['rps']:.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if args.record:
        record("bench/proxy_overhead.py", table)


if __name__ == "__main__":
    main()
