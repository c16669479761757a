"""Cold start of a service scaled to zero: the time from the first request to an idle
image service to its answer, against the floor of ``docker run`` of the same image and
its first answer, measured in the same run, round after round.

Usage: .venv/bin/python bench/cold_start.py [--rounds 5] [--data-plane haproxy|caddy]
       [--record]

It starts its own registry, Caddy and agent (as the e2e tests do), deploys the example
app with ``slipway:idle-timeout`` 2s, and each round: waits until the service has gone
idle (its event, its instances stopped), times one request through the data plane (held
by the waker while an instance starts and passes its HTTP health check, then proxied),
then times ``docker run -d`` of the same image (already on the host: neither pulls) plus
polling its published port every 10 ms until it answers. Goal (issue 18): the median
cold start within 1.5x of the median floor and under 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from datetime import date

import docker
import httpx
from common import example_service, local_stack, record

from slipway.backends.docker_networks import network_name
from testkit.harness import free_port, wait_for

NAME = "cold"
TIMEOUT = "2s"


def went_idle(agent, times: int) -> bool:
    return agent.cli("events", NAME).stdout.count("Service went idle") >= times


def instances(client: docker.DockerClient) -> list:
    return client.containers.list(filters={"label": f"slipway.service-name={NAME}"})


def cold_request(agent, host: str) -> float:
    start = time.perf_counter()
    answer = httpx.get(f"http://127.0.0.1:{agent.http_port}/", headers={"Host": host}, timeout=60)
    took = time.perf_counter() - start
    assert answer.status_code == 200 and answer.text.startswith("Hello"), answer.text
    return took


def docker_floor(client: docker.DockerClient, image: str) -> float:
    """``docker run`` of ``image`` until its first answer, in seconds."""
    port = free_port()
    start = time.perf_counter()
    container = client.containers.run(
        image, detach=True, ports={"8080/tcp": ("127.0.0.1", port)}, labels={"slipway.bench": "1"}
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    finally:
        container.remove(force=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data-plane", choices=("haproxy", "caddy"), default="haproxy")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    client = docker.from_env()
    load_before = os.getloadavg()[0]
    colds: list[float] = []
    floors: list[float] = []
    service_ids: list[str] = []
    try:
        with (
            local_stack(metrics_interval=0.5, scale_interval=0.5, data_plane=args.data_plane) as (
                registry,
                _caddy,
                agent,
            ),
            example_service(
                client,
                registry,
                agent,
                NAME,
                "bench/cold",
                Tags=[{"Key": "slipway:idle-timeout", "Value": TIMEOUT}],
            ) as (image, arn),
        ):
            service_ids.append(arn.rsplit("/", 1)[1])
            host = f"{NAME}.localhost:{agent.http_port}"
            for n in range(1, args.rounds + 1):
                wait_for(lambda n=n: went_idle(agent, n), 120, f"going idle, round {n}")
                wait_for(lambda: not instances(client), 60, "its instances to stop")
                colds.append(cold_request(agent, host))
                floors.append(docker_floor(client, image))
                print(f"round {n}: cold start {colds[-1]:.3f} s, floor {floors[-1]:.3f} s")
    finally:  # an idle service keeps its network: it goes with the service here
        for service_id in service_ids:
            with contextlib.suppress(docker.errors.NotFound):
                client.networks.get(network_name(service_id)).remove()
    load_after = os.getloadavg()[0]
    cold, floor = statistics.median(colds), statistics.median(floors)
    ratio = cold / floor
    verdict = "met" if ratio <= 1.5 and cold < 2 else "missed"
    rows = "\n".join(
        f"| {i} | {c:.3f} | {f:.3f} | {c / f:.2f}x |"
        for i, (c, f) in enumerate(zip(colds, floors, strict=True), 1)
    )
    table = (
        f"### Cold start, {date.today()}: example app, data_plane {args.data_plane},"
        f" {args.rounds} rounds; 2 cores shared with other engineers' tests, load average"
        f" {load_before:.1f} before, {load_after:.1f} after\n\n"
        "| round | idle service: first request to answer (s) | docker run + first answer (s)"
        " | ratio |\n| ---: | ---: | ---: | ---: |\n"
        f"{rows}\n| **median** | **{cold:.3f}** | **{floor:.3f}** | **{ratio:.2f}x** |\n\n"
        f"Goal (within 1.5x of docker run and under 2 s): {verdict}."
    )
    print(table)
    if args.record:
        record(
            "bench/cold_start.py",
            table,
            "Scale to zero (issue 18): the first request to an idle image service, held by the"
            " waker while an instance starts and passes its health check, against `docker run`"
            " of the same image and its first answer, in the same run.",
        )


if __name__ == "__main__":
    main()
