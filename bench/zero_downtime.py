"""Zero-downtime deployments: a steady, bounded load through the data plane while
deployments run back to back, counting failed requests and comparing latency with a
steady state.

Usage: .venv/bin/python bench/zero_downtime.py [--rate 200] [--deployments 10]
       [--data-plane haproxy|caddy] [--record]

It starts its own registry, Caddy and agent (as the e2e tests do; drain and settle
windows of 3 s, so ten deployments fit in a few minutes), deploys the example app,
measures a steady phase, then sends the same load while StartDeployment runs
``--deployments`` times, each with a new image under the same tag. Loopback only;
the request count is fixed by rate x duration.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
import uuid
from typing import Any

import docker
import httpx
from common import example_service, local_stack, record

from testkit.harness import operations, push_image, wait_status

ERRORS: dict[str, int] = {}  # what the failed requests met, for the report


async def load(url: str, host: str, rate: float, stop: asyncio.Event) -> list[tuple[float, bool]]:
    """Requests at a fixed rate until ``stop``; (latency seconds, ok) per request."""
    results: list[tuple[float, bool]] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(headers={"Host": host}, timeout=10, limits=limits) as client:

        async def one() -> None:
            start = time.perf_counter()
            try:
                answer = await client.get(url)
                ok = answer.status_code == 200
                kind = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                ok, kind = False, type(exc).__name__
            if not ok:
                ERRORS[kind] = ERRORS.get(kind, 0) + 1
            results.append((time.perf_counter() - start, ok))

        tasks = []
        interval = 1 / rate
        next_at = time.perf_counter()
        while not stop.is_set():
            tasks.append(asyncio.create_task(one()))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await asyncio.gather(*tasks)
    return results


def summary(results: list[tuple[float, bool]]) -> dict[str, float]:
    latencies = sorted(r[0] * 1000 for r in results)
    q = statistics.quantiles(latencies, n=100)
    return {
        "sent": len(results),
        "failed": sum(not ok for _, ok in results),
        "p50": q[49],
        "p99": q[98],
    }


async def phase(url: str, host: str, rate: float, work) -> list[tuple[float, bool]]:
    stop = asyncio.Event()
    task = asyncio.create_task(load(url, host, rate, stop))
    await asyncio.to_thread(work)
    stop.set()
    return await task


def build_variants(client: docker.DockerClient, registry: str, image: str, count: int) -> list[str]:
    """``count`` revisions of ``image``, built and pushed first: during the load only a
    tag moves (a manifest push)."""
    variants = []
    for n in range(count):
        local = f"slipway-bench/zero:{uuid.uuid4().hex[:8]}"
        client.images.build(fileobj=io.BytesIO(f"FROM {image}\nENV ROUND={n}".encode()), tag=local)
        push_image(client, local, f"{registry}/bench/zero:round{n}")
        variants.append(local)
    return variants


def deploy_under_load(
    api: Any,
    client: docker.DockerClient,
    arn: str,
    image: str,
    variants: list[str],
    load: tuple[str, str, float],
    timeout: float,
) -> tuple[list[tuple[float, bool]], float, int]:
    """Each variant deployed in turn under ``load`` (url, host, req/s): the answers, the
    seconds it took and how many deployments succeeded."""

    def deployments() -> None:
        for local in variants:
            push_image(client, local, image)
            api.start_deployment(ServiceArn=arn)
            time.sleep(1)
            wait_status(api, arn, "RUNNING", timeout=timeout)

    started = time.monotonic()
    during = asyncio.run(phase(*load, deployments))
    elapsed = time.monotonic() - started
    ops = operations(api, arn)
    succeeded = sum(o["Type"] == "START_DEPLOYMENT" and o["Status"] == "SUCCEEDED" for o in ops)
    return during, elapsed, succeeded


def arguments(description: str, data_plane: str) -> argparse.Namespace:
    """The command line this bench and ``bench/cluster.py`` share."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--deployments", type=int, default=10)
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument("--data-plane", choices=("caddy", "haproxy"), default=data_plane)
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    return parser.parse_args()


def main() -> None:
    args = arguments(__doc__.splitlines()[0], data_plane="haproxy")

    client = docker.from_env()
    with (
        local_stack(drain_seconds=3, settle_seconds=3, data_plane=args.data_plane) as (
            registry,
            caddy,
            agent,
        ),
        example_service(client, registry, agent, "zero", "bench/zero") as (image, arn),
    ):
        api = agent.client()
        url = f"http://127.0.0.1:{caddy.http_port}/"
        host = f"zero.localhost:{caddy.http_port}"

        steady = asyncio.run(phase(url, host, args.rate, lambda: time.sleep(args.steady_seconds)))

        variants = build_variants(client, registry.host, image, args.deployments)
        during, elapsed, succeeded = deploy_under_load(
            api, client, arn, image, variants, (url, host, args.rate), timeout=120
        )

    s, d = summary(steady), summary(during)
    lines = [
        f"### Zero downtime, {time.strftime('%Y-%m-%d')}: {args.rate:.0f} req/s through"
        f" {'Caddy' if args.data_plane == 'caddy' else 'HAProxy (data_plane: haproxy)'},"
        f" {succeeded}/{args.deployments} deployments succeeded in {elapsed:.0f} s",
        "",
        "| phase | requests | failed | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| steady | {s['sent']:.0f} | {s['failed']:.0f} | {s['p50']:.2f} | {s['p99']:.2f} |",
        f"| deploying | {d['sent']:.0f} | {d['failed']:.0f} | {d['p50']:.2f} | {d['p99']:.2f} |",
        "",
        f"p99 during deployments / steady: {d['p99'] / s['p99']:.2f}x",
        f"failures by kind: {ERRORS or 'none'}",
    ]
    table = "\n".join(lines)
    print(table)
    if args.record:
        record("bench/zero_downtime.py", table)


if __name__ == "__main__":
    main()
