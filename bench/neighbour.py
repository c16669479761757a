"""What a hostile tenant costs its neighbour: the latency of a service under a steady
200 req/s through Caddy, alone, then while another service's build burns CPU and holds
memory at its limit and a third service's instance burns CPU. Goal: p99 under attack
within 1.5x of steady.

Usage: .venv/bin/python bench/neighbour.py [--rate R] [--seconds S] [--record]

It starts its own registry, Caddy, git server and agent (as the e2e tests do), deploys
the example app as the neighbour, measures --seconds of steady load, starts the attack
(a CPU-burning image service, RUNNING first; then a code service whose build command
busy-loops in two processes holding memory near build_memory_mb), waits until the
hostile step runs, and measures --seconds more. Load is open-loop: requests are sent on
a fixed schedule whatever the answers do, and a late one counts from when it was due.
--record appends the table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import docker
from common import ROOT, example_service, local_stack, record

from testkit.gitserver import GitServer
from testkit.harness import code_source, image_source, wait_for, wait_status

BUILD_MEMORY_MB = 512
# Two busy processes (the build gets build_cpus of the host), one holding memory just
# under the build's limit; the build times out on its own after build_timeout.
HOSTILE_STEP = (
    "python3 -c 'while True: pass' & "
    f"python3 -c 'b = bytearray({BUILD_MEMORY_MB - 96} * 1024 * 1024); exec(\"while True: pass\")'"
)
BURNER = "( while :; do :; done ) & ( while :; do :; done ) & exec python3 /app/app.py"


async def _get(pool: asyncio.Queue, address: tuple[str, int], request: bytes) -> str:
    """One GET on a kept-alive connection of ``pool`` (a new one if none is idle): ""
    when it answered 200, else what went wrong."""
    try:
        reader, writer = pool.get_nowait()
    except asyncio.QueueEmpty:
        reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        await reader.readexactly(int(length[1]) if length else 0)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        writer.close()
        return repr(exc)
    pool.put_nowait((reader, writer))
    return "" if head.startswith(b"HTTP/1.1 200") else head.split(b"\r\n")[0].decode()


async def _open_loop(url: str, host: str, rate: float, seconds: float) -> dict[str, float]:
    address = (url.split("//")[1].split(":")[0], int(url.rsplit(":", 1)[1].strip("/")))
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    pool: asyncio.Queue = asyncio.Queue()
    latencies: list[float] = []
    failures: list[str] = []

    async def one(due: float) -> None:
        try:
            failure = await asyncio.wait_for(_get(pool, address, request), 10)
        except TimeoutError:
            failure = "no answer in 10 s"
        if failure:
            failures.append(failure)
        else:
            latencies.append((time.perf_counter() - due) * 1000)

    loop_start = time.perf_counter() + 0.1
    count = int(rate * seconds)
    tasks = []
    for n in range(count):
        due = loop_start + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    for failure in sorted(set(failures)):
        print(f"failed {failures.count(failure)} times: {failure}")
    return {"sent": count, "failed": len(failures), "p50": quantiles[49], "p99": quantiles[98]}


def steady_load(url: str, host: str, rate: float, seconds: float) -> dict[str, float]:
    """``rate`` requests a second for ``seconds``, each on its schedule (open loop, one
    thread, kept-alive connections: the client's own pauses stay small); latency counts
    from when a request was due, so a stalled server cannot hide its queue."""
    return asyncio.run(_open_loop(url, host, rate, seconds))


def hostile_step_running(client: docker.DockerClient) -> bool:
    """A build step container of this run's hostile build is up."""
    for container in client.containers.list(filters={"status": "running"}):
        command = " ".join(container.attrs["Config"].get("Cmd") or [])
        if "while True: pass" in command:
            return True
    return False


def run(
    client: docker.DockerClient, files: dict[str, str], args: argparse.Namespace, settings: dict
) -> tuple[list[tuple[str, dict[str, float]]], float]:
    """The neighbour's load alone, with the burner, with the burner and the build; and
    the load average at the end."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        GitServer(Path(tmp)) as git,
        local_stack(**settings) as (registry, caddy, agent),
        example_service(client, registry, agent, "neighbour", "bench/neighbour") as (image, _),
    ):
        git.create_repo("hostile", files)
        url, host = f"http://127.0.0.1:{caddy.http_port}/", f"neighbour.localhost:{caddy.http_port}"
        steady_load(url, host, args.rate, 3)  # warm up
        rows = [("steady", steady_load(url, host, args.rate, args.seconds))]

        api = agent.client()
        burner = api.create_service(
            ServiceName="burner", SourceConfiguration=image_source(image, StartCommand=BURNER)
        )["Service"]["ServiceArn"]
        wait_status(api, burner, "RUNNING")
        rows.append(("CPU burner", steady_load(url, host, args.rate, args.seconds)))
        hostile = api.create_service(
            ServiceName="hostile", SourceConfiguration=code_source(git.url("hostile"))
        )["Service"]["ServiceArn"]

        def hostile_building() -> bool:
            status = api.describe_service(ServiceArn=hostile)["Service"]["Status"]
            if status != "OPERATION_IN_PROGRESS":
                raise AssertionError(
                    f"the hostile service went {status} before its build step:"
                    f" {agent.log_text()[-1500:]}"
                )
            return hostile_step_running(client)

        wait_for(hostile_building, 300, "the hostile build step")
        rows.append(("CPU burner + build", steady_load(url, host, args.rate, args.seconds)))
        load_after = os.getloadavg()[0]
    return rows, load_after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()

    client = docker.from_env()
    example = ROOT / "examples" / "python-hello"
    files = {str(p.relative_to(example)): p.read_text() for p in example.iterdir() if p.is_file()}
    install = "      - pip install -r requirements.txt\n"
    files["apprunner.yaml"] = files["apprunner.yaml"].replace(
        install,
        install + f"      - {json.dumps(HOSTILE_STEP)}\n",  # a JSON string is YAML
    )
    load_before = os.getloadavg()[0]
    settings = {"build_memory_mb": BUILD_MEMORY_MB, "build_timeout": 4 * args.seconds + 120}
    try:
        rows, load_after = run(client, files, args, settings)
    finally:  # the agent is gone by now (its build cancelled): what it ran goes too
        wait_for(lambda: not hostile_step_running(client), 60, "the hostile build to stop")
        for name in ("burner", "hostile"):
            for container in client.containers.list(
                all=True, filters={"label": f"slipway.service-name={name}"}
            ):
                container.remove(force=True)

    lines = [
        f"### Neighbour under attack, {time.strftime('%Y-%m-%d')}: {args.rate:g} req/s"
        f" through Caddy for {args.seconds:g} s per phase; 2 cores, load average"
        f" {load_before:.1f} before, {load_after:.1f} under attack",
        "",
        "| phase | requests | failed | p50 ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['sent']:.0f} | {r['failed']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} |"
        )
    steady, attacked = rows[0][1], rows[-1][1]
    ratio = attacked["p99"] / steady["p99"] if steady["p99"] else float("inf")
    lines += [
        "",
        f"p99 under attack / steady: {ratio:.2f}x (goal within 1.5x:"
        f" {'met' if ratio <= 1.5 else 'not met'}).",
    ]
    table = "\n".join(lines)
    print(table)
    if args.record:
        record(
            "bench/neighbour.py",
            table,
            "A neighbour service's latency through Caddy at a steady 200 req/s (open loop,"
            " counted from when each request was due), alone, with a CPU-burning instance"
            " of another service (1 vCPU, two busy loops), and with that plus a hostile"
            " build (two busy processes, memory near build_memory_mb). Goal: p99 under"
            " attack within 1.5x of steady.",
        )


if __name__ == "__main__":
    main()
