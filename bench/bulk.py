"""Bulk creation: N image services created at once until every one is RUNNING and
answers through Caddy, against N plain ``docker run``s of the same image; then all
deleted.

Usage: .venv/bin/python bench/bulk.py [--count 100] [--idle-seconds 30]
       [--settle 30] [--drain 30] [--health-interval N] [--timeout 1200]
       [--agent-log PATH] [--record]

It starts its own registry, Caddy and agent (as the e2e tests do) with
``service_quota`` raised to fit ``--count``, and the agent's defaults where they
shape the figure: settle 30 s, drain 30 s, reconcile every 2 s, health deadline
120 s (``--settle``/``--drain`` change the first two; the table says which were
used). The example app (``examples/hello``) is pushed to the local registry.

The floor comes first: ``docker run -d`` of that image ``--count`` times at once, each
published as slipway publishes an instance (its own loopback address, one port, the
default 1 vCPU / 2 GB limits, restart unless-stopped), timed until each answers 200 on
its address; then ``docker rm -f`` of all at once. Then ``--count`` CreateService
calls at once (App Runner's default health check, TCP every 5 s, as a user who sets
none gets; ``--health-interval N`` for an HTTP check on /health every N s), timed
until every service is RUNNING (ListServices each second, DescribeService of all at
the end) and answers 200 with the app's body through Caddy (Host header per service).
With all of them up: the agent's RSS (/proc VmRSS; VmHWM for the peak) and its CPU
over ``--idle-seconds`` with nothing asked of it (utime + stime, % of one core). Then
DeleteService of all at once, timed until none is listed, each DescribeService says
DELETED (or not found) and none of their containers is left. Loopback only.

Goal: create under 3 minutes and within 3x of the floor; RSS with 100 services under
150 MB; idle CPU under 1% of a core. Exits non-zero when the stack does not come up
or a phase does not finish within ``--timeout``; a missed goal is only printed.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import docker
import httpx
from botocore.config import Config
from botocore.exceptions import ClientError
from common import ROOT, AgentProcess, cpu_seconds, local_stack, memory_mb, push_image, record

from slipway.backends import LABEL_SERVICE_NAME

LOCAL_IMAGE = "slipway-bench/hello:latest"
FLOOR_LABEL = "slipway-bench.bulk-floor"
APP_PORT = 8080
BODY = "Hello from slipway!"
POLL = 1.0  # seconds between two looks at the services
PROBES = 16  # concurrent HTTP probes through Caddy


class Incomplete(Exception):
    """A phase did not finish in time: its figures are printed, the exit code says so."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_client(agent: AgentProcess, connections: int) -> Any:
    """A boto3 App Runner client with a connection for each concurrent call."""
    key_id, secret = agent.credentials()
    return boto3.client(
        "apprunner",
        endpoint_url=agent.endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(
            max_pool_connections=connections, retries={"max_attempts": 1}, read_timeout=300
        ),
    )


def at_once(work: Callable[[str], Any], names: list[str]) -> dict[str, Any]:
    """``work(name)`` for every name, all started together; result or exception by name."""

    def guarded(name: str) -> Any:
        try:
            return work(name)
        except Exception as exc:  # noqa: BLE001 - reported per name by the caller
            return exc

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(guarded, names), strict=True))


def answers(http: httpx.Client, url: str, host: str | None = None) -> bool:
    """Whether the example app answers 200 with its body at ``url``."""
    try:
        reply = http.get(url, headers={"Host": host} if host else None)
    except httpx.HTTPError:
        return False
    return reply.status_code == 200 and reply.text.startswith(BODY)


# -- the floor: plain docker run ------------------------------------------------------


def floor(
    image: str, names: list[str], run_id: str, timeout: float, stop: threading.Event
) -> tuple[float, float]:
    """Seconds until all ``docker run``s answer, and for ``docker rm -f`` of all."""
    port = free_port()
    started = time.monotonic()
    deadline = started + timeout

    def one(name: str) -> float:
        index = names.index(name)
        address = f"127.78.{index // 250}.{index % 250 + 1}"
        subprocess.run(
            ["docker", "run", "-d", "--name", name, "--label", f"{FLOOR_LABEL}={run_id}"]
            + ["-e", f"PORT={APP_PORT}", "-p", f"{address}:{port}:{APP_PORT}"]
            + ["--restart", "unless-stopped", "--cpus", "1", "--memory", "2048m", image],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        with httpx.Client(timeout=2) as http:
            while not answers(http, f"http://{address}:{port}/"):
                if time.monotonic() > deadline or stop.is_set():
                    raise Incomplete(f"{name} did not answer within {timeout:g} s")
                time.sleep(0.1)
        return time.monotonic() - started

    results = at_once(one, names)
    problems = {n: r for n, r in results.items() if isinstance(r, Exception)}
    if problems:
        name, exc = next(iter(problems.items()))
        detail = getattr(exc, "stderr", b"") or b""
        raise RuntimeError(
            f"{len(problems)} docker runs failed, e.g. {name}: {exc} {detail.decode()[-500:]}"
        )
    up = max(results.values())
    removing = time.monotonic()
    at_once(
        lambda n: subprocess.run(["docker", "rm", "-f", n], check=True, capture_output=True),
        names,
    )
    return up, time.monotonic() - removing


# -- slipway --------------------------------------------------------------------------


def statuses(api: Any, prefix: str) -> dict[str, str]:
    """Status of each listed service of this run (ListServices, every page)."""
    found: dict[str, str] = {}
    params: dict[str, Any] = {"MaxResults": 20}
    while True:
        page = api.list_services(**params)
        for summary in page["ServiceSummaryList"]:
            if summary["ServiceName"].startswith(prefix):
                found[summary["ServiceName"]] = summary["Status"]
        if not page.get("NextToken"):
            return found
        params["NextToken"] = page["NextToken"]


def describe_status(api: Any, arn: str) -> str:
    try:
        return api.describe_service(ServiceArn=arn)["Service"]["Status"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return "DELETED"
        raise


def progress(what: str, started: float, done: int, total: int, extra: str = "") -> None:
    print(f"  {what}: {time.monotonic() - started:6.0f} s  {done}/{total}{extra}", flush=True)


def create_all(
    api: Any,
    image: str,
    names: list[str],
    http_port: int,
    timeout: float,
    health: dict[str, Any] | None,
) -> dict[str, Any]:
    """CreateService for every name at once; times until all are RUNNING and answer.
    ``health``: the HealthCheckConfiguration, None for App Runner's default."""
    prefix = names[0].rsplit("-", 1)[0] + "-"
    started = time.monotonic()

    def create(name: str) -> tuple[str, float]:
        arn = api.create_service(
            ServiceName=name,
            SourceConfiguration={
                "ImageRepository": {"ImageIdentifier": image, "ImageRepositoryType": "ECR"},
                "AutoDeploymentsEnabled": False,
            },
            **({"HealthCheckConfiguration": health} if health else {}),
        )["Service"]["ServiceArn"]
        return arn, time.monotonic() - started

    created = at_once(create, names)
    refused = {n: r for n, r in created.items() if isinstance(r, Exception)}
    arns = {n: r[0] for n, r in created.items() if not isinstance(r, Exception)}
    calls = sorted(r[1] for r in created.values() if not isinstance(r, Exception))
    running: dict[str, float] = {}
    answering: dict[str, float] = {}
    failed: dict[str, str] = {}
    deadline = started + timeout
    reported = 0.0
    url = f"http://127.0.0.1:{http_port}/"
    with (
        httpx.Client(timeout=2, limits=httpx.Limits(max_connections=PROBES)) as http,
        ThreadPoolExecutor(max_workers=PROBES) as probes,
    ):
        while time.monotonic() < deadline:
            seen = statuses(api, prefix)
            now = time.monotonic() - started
            for name in set(arns) - set(running) - set(failed):
                status = seen.get(name, "")
                if status == "RUNNING":
                    running[name] = now
                elif status not in ("OPERATION_IN_PROGRESS", ""):
                    failed[name] = status
            waiting = sorted(set(arns) - set(answering) - set(failed))
            hosts = [f"{n}.localhost:{http_port}" for n in waiting]
            for name, ok in zip(
                waiting, probes.map(lambda h: answers(http, url, h), hosts), strict=True
            ):
                if ok:
                    answering[name] = time.monotonic() - started
            alive = set(arns) - set(failed)
            if alive <= set(running) and alive <= set(answering):
                break
            if now - reported >= 30:
                reported = now
                progress(
                    "create",
                    started,
                    len(running),
                    len(names),
                    f" RUNNING, {len(answering)} answering",
                )
            time.sleep(max(0.0, POLL - (time.monotonic() - started - now)))
    confirmed = sum(describe_status(api, arn) == "RUNNING" for arn in arns.values())
    complete = confirmed == len(names) and len(answering) == len(names)
    return {
        "arns": arns,
        "refused": refused,
        "failed": failed,
        "calls": calls,
        "running": running,
        "answering": answering,
        "confirmed": confirmed,
        "complete": complete,
        "seconds": max([*running.values(), *answering.values()], default=0.0) if complete else None,
    }


def delete_all(
    api: Any, client: docker.DockerClient, arns: dict[str, str], timeout: float
) -> dict[str, Any]:
    """DeleteService for every service at once; time until all are gone, containers too."""
    names = sorted(arns)
    if not names:
        return {"refused": {}, "gone": 0, "containers": 0, "complete": True, "seconds": 0.0}
    prefix = names[0].rsplit("-", 1)[0] + "-"
    started = time.monotonic()
    refused = {
        n: r
        for n, r in at_once(lambda n: api.delete_service(ServiceArn=arns[n]), names).items()
        if isinstance(r, Exception)
    }
    gone: set[str] = set()
    deadline = started + timeout
    reported = 0.0
    containers = -1
    while time.monotonic() < deadline:
        listed = statuses(api, prefix)
        # Offset paging while rows disappear can skip one: confirm each absence.
        for name in set(names) - gone - set(listed):
            if describe_status(api, arns[name]) == "DELETED":
                gone.add(name)
        if len(gone) == len(names):
            containers = len(own_containers(client, names))
            if containers == 0:
                break
        now = time.monotonic() - started
        if now - reported >= 30:
            reported = now
            progress("delete", started, len(gone), len(names), " DELETED")
        time.sleep(POLL)
    complete = len(gone) == len(names) and containers == 0
    return {
        "refused": refused,
        "gone": len(gone),
        "containers": containers,
        "complete": complete,
        "seconds": time.monotonic() - started if complete else None,
    }


def own_containers(client: docker.DockerClient, names: Iterable[str]) -> list[Any]:
    """The containers of this run's services, whatever their state."""
    wanted = set(names)
    return [
        c
        for c in client.containers.list(all=True, filters={"label": LABEL_SERVICE_NAME})
        if c.labels.get(LABEL_SERVICE_NAME) in wanted
    ]


def dockerd_pids() -> set[int]:
    """The running dockerd processes: a different set later means it restarted."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "dockerd":
                    found.add(int(entry.name))
            except OSError:
                pass
    return found


def agent_log_summary(agent: AgentProcess) -> list[str]:
    """Counts of the agent log's errors, warnings and tracebacks, with a first example."""
    lines = agent.log_text().splitlines()
    summary = []
    for word in ("ERROR", "WARNING", "Traceback"):
        hits = [line for line in lines if word in line]
        if hits:
            summary.append(f"{word}: {len(hits)} (first: {hits[0][:200]})")
    return summary


# -- the run --------------------------------------------------------------------------


def job_cpu(agent: AgentProcess) -> dict[str, float]:
    """CPU seconds each of the agent's jobs has taken so far, as ``/healthz`` says."""
    jobs = httpx.get(f"{agent.endpoint}/healthz", timeout=5).json().get("jobs", {})
    return {name: float(job["cpu_seconds"]) for name, job in jobs.items()}


def seconds(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=30.0, help="settle_seconds (default 30)")
    parser.add_argument("--drain", type=int, default=30, help="drain_seconds (default 30)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="per phase, seconds")
    parser.add_argument(
        "--health-interval",
        type=int,
        default=0,
        help="HTTP /health check every N s (default: App Runner's default check, TCP every 5 s)",
    )
    parser.add_argument("--agent-log", type=Path, help="keep a copy of the agent's log here")
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()

    client = docker.from_env()
    client.images.build(path=str(ROOT / "examples" / "hello"), tag=LOCAL_IMAGE)
    run_id = uuid.uuid4().hex[:6]
    names = [f"bulk{run_id}-{i:03d}" for i in range(args.count)]
    floor_names = [f"slipway-bench-floor-{run_id}-{i:03d}" for i in range(args.count)]
    settings = {
        "service_quota": args.count + 10,
        "settle_seconds": args.settle,
        "drain_seconds": args.drain,
        "reconcile_interval": 2,
        "health_deadline": 120,
    }
    daemons = dockerd_pids()
    stop = threading.Event()
    log_summary: list[str] = []
    try:
        with local_stack(**settings) as (registry, caddy, agent):
            try:
                image = f"{registry.host}/bench/bulk:live"
                push_image(client, LOCAL_IMAGE, image)
                print(f"floor: {args.count} x docker run", flush=True)
                floor_up, floor_rm = floor(image, floor_names, run_id, args.timeout, stop)
                print(f"  up in {floor_up:.1f} s, removed in {floor_rm:.1f} s", flush=True)

                assert agent.proc is not None
                pid = agent.proc.pid
                api = api_client(agent, args.count)
                print(f"slipway: {args.count} x CreateService", flush=True)
                cpu_before = cpu_seconds(pid)
                health = (
                    {"Protocol": "HTTP", "Path": "/health", "Interval": args.health_interval}
                    if args.health_interval
                    else None
                )
                made = create_all(api, image, names, caddy.http_port, args.timeout, health)
                create_cpu = cpu_seconds(pid) - cpu_before

                time.sleep(5)  # the last operations' bookkeeping
                print(f"slipway: idle for {args.idle_seconds:g} s", flush=True)
                rss = memory_mb(pid)
                idle_before, jobs_before = cpu_seconds(pid), job_cpu(agent)
                time.sleep(args.idle_seconds)
                idle_cpu = (cpu_seconds(pid) - idle_before) / args.idle_seconds * 100
                idle_jobs = {
                    name: (spent - jobs_before.get(name, 0.0)) / args.idle_seconds * 100
                    for name, spent in job_cpu(agent).items()
                }
                rss = max(rss, memory_mb(pid))
                peak = max(rss, memory_mb(pid, "VmHWM"))
                print(f"slipway: {len(made['arns'])} x DeleteService", flush=True)
                removed = delete_all(api, client, made["arns"], args.timeout)
            finally:
                log_summary = agent_log_summary(agent)
                if args.agent_log:
                    args.agent_log.write_text(agent.log_text())
                stop.set()
                agent.kill()  # before its containers go, or it would replace them
                for container in own_containers(client, names):
                    container.remove(force=True)
    finally:
        for container in client.containers.list(
            all=True, filters={"label": f"{FLOOR_LABEL}={run_id}"}
        ):
            container.remove(force=True)

    n = args.count
    create_s = made["seconds"]
    ratio = f"{create_s / floor_up:.1f}x" if create_s else "n/a"
    all_running = max(made["running"].values(), default=None) if made["complete"] else None
    windows = "defaults" if (args.settle, args.drain) == (30.0, 30) else "changed"
    checks = (
        f"HTTP health check every {args.health_interval} s"
        if args.health_interval
        else "default TCP health check every 5 s"
    )
    lines = [
        f"### Bulk creation, {time.strftime('%Y-%m-%d')}: {n} image services at once,"
        f" settle {args.settle:g} s / drain {args.drain} s ({windows}),"
        f" {checks}, 2 cores",
        "",
        "| N | slipway create s | of which all RUNNING s | docker run s | slipway / docker"
        " | agent RSS MB | peak RSS MB | idle agent CPU % of a core | agent CPU s creating"
        " | slipway delete s | docker rm -f s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {n} | {seconds(create_s)} | {seconds(all_running)} | {floor_up:.1f} | {ratio}"
        f" | {rss:.0f} | {peak:.0f} | {idle_cpu:.2f} | {create_cpu:.1f}"
        f" | {seconds(removed['seconds'])} | {floor_rm:.1f} |",
        "",
    ]
    calls = made["calls"]
    if calls:
        lines.append(
            f"CreateService calls: {len(calls)}/{n} answered, the last after {calls[-1]:.1f} s."
        )
    if made["running"]:
        first = min(made["running"].values())
        middle = statistics.median(made["running"].values())
        lines.append(f"RUNNING: first after {first:.1f} s, median {middle:.1f} s.")
    if not made["complete"]:
        lines.append(
            f"Create incomplete: {len(made['running'])} RUNNING ({made['confirmed']} by"
            f" DescribeService), {len(made['answering'])} answering, failed"
            f" {made['failed'] or 'none'}, refused {len(made['refused'])}"
            + (f" (e.g. {next(iter(made['refused'].values()))})" if made["refused"] else "")
        )
    if not removed["complete"]:
        lines.append(
            f"Delete incomplete: {removed['gone']}/{len(made['arns'])} DELETED,"
            f" {removed['containers']} containers left, refused {len(removed['refused'])}"
        )
    if idle_jobs:
        spent = sorted(idle_jobs.items(), key=lambda item: -item[1])
        lines.append(
            "Idle CPU by job (% of a core; TCP health checks count in reconcile;"
            " other: the API server, the scheduler's threads, HTTP checks, log followers): "
            + ", ".join(f"{name} {share:.2f}" for name, share in spent)
            + f"; other {idle_cpu - sum(idle_jobs.values()):.2f}."
        )
    goals = [
        ("create < 180 s", create_s is not None and create_s < 180),
        ("create < 3x docker run", create_s is not None and create_s < 3 * floor_up),
        ("RSS < 150 MB", rss < 150),
        ("idle CPU < 1%", idle_cpu < 1),
    ]
    lines.append(
        "Goals: " + "; ".join(f"{g}: {'met' if ok else 'missed'}" for g, ok in goals) + "."
    )
    if dockerd_pids() != daemons:
        lines.append("The docker daemon restarted during the run: the figures are not valid.")
    table = "\n".join(lines)
    print(table)
    print("agent log:", *(log_summary or ["no errors or warnings"]), sep="\n  ")
    if args.record:
        record("Bulk creation (bench/bulk.py)", table)
    return 0 if made["complete"] and removed["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
