"""Zero-downtime deployments and node loss on a 3-node Swarm (``backend: swarm``).

Usage: .venv/bin/python bench/cluster.py [--rate 200] [--deployments 10]
       [--data-plane caddy|haproxy] [--record]

The same bench as ``bench/zero_downtime.py`` (its load, phases and summary), with the
agent's instances on a real 3-node Swarm (``scripts/test-cluster``, started and torn
down here): the example app with MinSize 3 (one instance per node), a steady phase,
``--deployments`` deployments back to back under load, then ``kill -9`` of a worker
node's daemon under load, timed until three instances run again, none on that node.
Goals (issue 16): 0 failed and p99 within 2x steady while deploying; full capacity
again within 30 s of the node loss.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
from common import ROOT, example_service, local_stack, record
from zero_downtime import ERRORS, arguments, build_variants, deploy_under_load, phase, summary

from testkit.harness import LocalRegistry

SCRIPT = ROOT / "scripts" / "test-cluster"
MANAGER = "unix:///run/slipway-cluster/n1/docker.sock"


@contextmanager
def test_cluster(registry: LocalRegistry) -> Iterator[None]:
    """``scripts/test-cluster up`` with the registry's port (its nodes pull from it),
    and down again on the way out."""
    try:
        port = registry.host.rpartition(":")[2]
        subprocess.run([str(SCRIPT), "up", "--registry-port", port], check=True)
        yield
    finally:
        subprocess.run([str(SCRIPT), "down"], check=True)


def running_nodes(manager: docker.DockerClient, service_name: str) -> list[str]:
    """Host names of the nodes running an instance of ``service_name``."""
    names = {n.id: n.attrs["Description"]["Hostname"] for n in manager.nodes.list()}
    return [
        names[t["NodeID"]]
        for s in manager.services.list(filters={"label": f"slipway.service-name={service_name}"})
        for t in s.tasks(filters={"desired-state": "running"})
        if t["Status"]["State"] == "running"
    ]


def main() -> None:
    args = arguments(__doc__.splitlines()[0], data_plane="caddy")

    client = docker.from_env()
    settings = {
        "backend": "swarm",
        "swarm_docker_host": MANAGER,
        "drain_seconds": 3,
        "settle_seconds": 3,
        "data_plane": args.data_plane,
        "scale_in_cooldown": 3600,
    }
    with local_stack(beside=test_cluster, **settings) as (registry, caddy, agent):
        manager = docker.DockerClient(base_url=MANAGER)
        try:
            api = agent.client()
            asc = api.create_auto_scaling_configuration(
                AutoScalingConfigurationName="three", MinSize=3, MaxSize=3, MaxConcurrency=100
            )["AutoScalingConfiguration"]["AutoScalingConfigurationArn"]
            with example_service(
                client,
                registry,
                agent,
                "zero",
                "bench/zero",
                AutoScalingConfigurationArn=asc,
                InstanceConfiguration={"Cpu": "256", "Memory": "512"},
            ) as (image, arn):
                url = f"http://127.0.0.1:{caddy.http_port}/"
                host = f"zero.localhost:{caddy.http_port}"
                spread = sorted(running_nodes(manager, "zero"))
                steady = asyncio.run(
                    phase(url, host, args.rate, lambda: time.sleep(args.steady_seconds))
                )
                variants = build_variants(client, registry.host, image, args.deployments)
                during, elapsed, succeeded = deploy_under_load(
                    api, client, arn, image, variants, (url, host, args.rate), timeout=180
                )
                deploy_errors = dict(ERRORS)
                ERRORS.clear()
                restored: list[float] = []

                def node_loss() -> None:
                    lost = time.monotonic()
                    subprocess.run([str(SCRIPT), "kill", "3"], check=True)
                    while True:
                        nodes = running_nodes(manager, "zero")
                        if len(nodes) >= 3 and "slwc-n3" not in nodes:
                            restored.append(time.monotonic() - lost)
                            return
                        time.sleep(0.2)

                loss = asyncio.run(phase(url, host, args.rate, node_loss))
        finally:
            manager.close()

    s, d, k = summary(steady), summary(during), summary(loss)
    plane = "Caddy" if args.data_plane == "caddy" else "HAProxy (data_plane: haproxy)"
    lines = [
        f"### Cluster, {time.strftime('%Y-%m-%d')}: 3-node Swarm (scripts/test-cluster),"
        f" instances on {', '.join(spread)}; {args.rate:.0f} req/s through {plane};"
        f" {succeeded}/{args.deployments} deployments succeeded in {elapsed:.0f} s",
        "",
        "| phase | requests | failed | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| steady | {s['sent']:.0f} | {s['failed']:.0f} | {s['p50']:.2f} | {s['p99']:.2f} |",
        f"| deploying | {d['sent']:.0f} | {d['failed']:.0f} | {d['p50']:.2f} | {d['p99']:.2f} |",
        f"| node 3's daemon killed | {k['sent']:.0f} | {k['failed']:.0f} | {k['p50']:.2f}"
        f" | {k['p99']:.2f} |",
        "",
        f"p99 during deployments / steady: {d['p99'] / s['p99']:.2f}x;"
        f" failures by kind while deploying: {deploy_errors or 'none'},"
        f" at the node loss: {ERRORS or 'none'}",
        f"node loss to full capacity (3 instances running, none on the lost node):"
        f" {restored[0]:.1f} s",
    ]
    table = "\n".join(lines)
    print(table)
    if args.record:
        record("bench/cluster.py", table)


if __name__ == "__main__":
    main()
