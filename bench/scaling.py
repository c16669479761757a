"""Auto scaling reaction times: from the onset of a sustained overload to the service
scaled out and serving from every new instance, and from the end of the load to the
service back at MinSize.

Usage: .venv/bin/python bench/scaling.py [--rounds 3] [--workers 8] [--record]

It starts its own registry, Caddy and agent (the agent's default sampling: every
1 s, a 2 s scale-out window; a scale-in cool-down of 15 s instead of 60 s so rounds
stay short: the scale-in time is that cool-down plus the drain), deploys the example
app with MaxConcurrency 2, MinSize 1, MaxSize 4 and an HTTP health check every 1 s,
then per round runs ``--workers`` clients that each send 1 s requests through Caddy
one after another. "serving" is the first moment answers have come from MaxSize
distinct instances (the app's X-Instance header), which needs each new instance
healthy and in Caddy's route. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import docker
from common import example_service, local_stack, record

from testkit.harness import AgentProcess, Load, wait_for

MAX_SIZE = 4
COOLDOWN = 15


def scale_outs(agent: AgentProcess) -> int:
    """How many scale-out moves the agent has reported (``slipway events``)."""
    listing = subprocess.run(
        [sys.executable, "-m", "slipway", "events", "elastic", "--json"],
        env=agent.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    details = [json.loads(line)["detail"] for line in listing.splitlines() if line.strip()]
    return sum(
        d.get("currentInstanceCount", 0) > d.get("previousInstanceCount", 0) for d in details
    )


def running(client: docker.DockerClient, service: str) -> int:
    return len(
        client.containers.list(
            filters={"label": f"slipway.service-name={service}", "status": "running"}
        )
    )


def serving_from(load: Load, count: int) -> float | None:
    """When (``time.time()``) answers had come from ``count`` distinct instances."""
    seen: set[str] = set()
    with load.lock:
        for at, (status, instance) in zip(load.times, load.answers, strict=True):
            if status == 200:
                seen.add(instance)
                if len(seen) >= count:
                    return at
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()

    client = docker.from_env()
    rows = []
    with local_stack(scale_in_cooldown=COOLDOWN, drain_seconds=5) as (registry, caddy, agent):
        asc = agent.client().create_auto_scaling_configuration(
            AutoScalingConfigurationName="bench", MaxConcurrency=2, MinSize=1, MaxSize=MAX_SIZE
        )["AutoScalingConfiguration"]["AutoScalingConfigurationArn"]
        with example_service(
            client,
            registry,
            agent,
            "elastic",
            "bench/elastic",
            InstanceConfiguration={"Cpu": "256", "Memory": "512"},
            AutoScalingConfigurationArn=asc,
        ):
            for _ in range(args.rounds):
                wait_for(lambda: running(client, "elastic") == 1, 120, "MinSize")
                moves = scale_outs(agent)
                onset = time.time()
                with Load(agent, "elastic", args.workers, slow_ms=1000) as load:
                    wait_for(lambda: running(client, "elastic") == MAX_SIZE, 60, "scale out")
                    started = time.time() - onset
                    wait_for(lambda o=load: serving_from(o, MAX_SIZE) is not None, 60, "serving")
                    serving = serving_from(load, MAX_SIZE) - onset
                ended = time.monotonic()
                wait_for(lambda: running(client, "elastic") == 1, 120, "scale in")
                back = time.monotonic() - ended
                failed = len(load.failed()) + len(load.errors)
                rows.append((started, serving, back, failed, scale_outs(agent) - moves))

    lines = [
        f"### Scaling, {time.strftime('%Y-%m-%d')}: {args.workers} clients x 1 s requests,"
        f" MaxConcurrency 2, MinSize 1, MaxSize {MAX_SIZE}, cool-down {COOLDOWN} s, 2 cores",
        "",
        "| round | scale-out steps | onset -> 4 running s | onset -> 4 serving s"
        " | load end -> MinSize s | failed requests |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, (started, serving, back, failed, steps) in enumerate(rows, 1):
        lines.append(f"| {n} | {steps} | {started:.1f} | {serving:.1f} | {back:.1f} | {failed} |")
    median_serving = statistics.median(r[1] for r in rows)
    lines += [
        "",
        f"Median onset -> serving: {median_serving:.1f} s"
        f" (goal < 10 s: {'met' if median_serving < 10 else 'missed'});"
        f" worst {max(r[1] for r in rows):.1f} s.",
    ]
    table = "\n".join(lines)
    print(table)
    if args.record:
        record("bench/scaling.py", table)


if __name__ == "__main__":
    main()
