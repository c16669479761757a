"""What observability costs the agent under traffic: its CPU and RSS while 10 services
take 1,000 req/s in total through Caddy, with metrics and logs on and then off.

Usage: .venv/bin/python bench/agent_overhead.py [--seconds 60] [--rate 1000]
       [--services 10] [--clients 2] [--variants on,off] [--record]

Each variant gets a private registry, Caddy and agent (as the e2e tests do, with the
default reconcile interval of 2 s) and deploys the example app (``examples/hello``) as
10 image services. After an idle phase it drives a fixed-rate, bounded load through
Caddy: ``--rate`` requests per second in total, spread evenly over the 10 service hosts,
for ``--warmup`` + ``--seconds`` s; only the last ``--seconds`` are measured. The load
generator is ``--clients`` separate processes (asyncio, raw HTTP/1.1 keep-alive, at most
16 connections per host), so its CPU is not the agent's; loopback only.

The example app prints one line per request to stdout, so the load exercises every
collection path at the full rate: Caddy writes one JSON access-log line per request and
the metrics collector reads them (every 5 s); docker stats of the 10 instances (every
15 s); and the app-log collector follows the 10 containers' output into their
``instance/<id>`` streams, 1,000 lines/s. Off: ``access_log: off`` (Caddy logs nothing,
no request metrics), ``app_logs: false`` (no followers) and no docker stats after the
first pass (``metrics_stats_interval`` a day).

Agent CPU is utime + stime of the agent process from /proc/<pid>/stat (children
excluded) over the measured window, as % of one core; RSS is sampled every 0.5 s.
Caddy's and dockerd's CPU, the load generator's and the whole machine's are printed
for context. Goal: collection (on - off) under 5% of one core. --record appends the
table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import docker
import httpx
from common import ROOT, local_stack, record

from slipway.backends import LABEL_SERVICE_NAME
from testkit.harness import image_source, push_image, wait_for, wait_status

CLK = os.sysconf("SC_CLK_TCK")
LOCAL_IMAGE = "slipway-bench/hello:latest"
MAX_CONNECTIONS = 16  # per host and client process
DAY = 86400

VARIANTS: dict[str, dict[str, Any]] = {
    "on": {},  # the defaults: access log, docker stats, app logs
    "off": {"access_log": "off", "app_logs": "false", "metrics_stats_interval": DAY},
}


# -- /proc ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pids_named(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # gone meanwhile
            found[pid] = cpu_seconds(pid)
    return found


def machine_ticks() -> tuple[int, int]:
    """(busy, all) jiffies of the whole machine, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class Window:
    """CPU of the agent, Caddy and dockerd, and the agent's RSS, between start and stop."""

    def __init__(self, agent_pid: int, caddy_pid: int) -> None:
        self.agent_pid, self.caddy_pid = agent_pid, caddy_pid
        self.dockerd = pids_named("dockerd")
        self.rss: list[float] = []
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)

    def _snapshot(self) -> tuple[float, float, float, dict[int, float], tuple[int, int]]:
        return (
            time.monotonic(),
            cpu_seconds(self.agent_pid),
            cpu_seconds(self.caddy_pid),
            cpu_by_pid(self.dockerd),
            machine_ticks(),
        )

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.rss.append(rss_mb(self.agent_pid))

    def start(self) -> None:
        self.rss.append(rss_mb(self.agent_pid))
        self.begin = self._snapshot()
        self._sampler.start()

    def stop(self) -> dict[str, float]:
        end = self._snapshot()
        self._stop.set()
        self._sampler.join()
        self.rss.append(rss_mb(self.agent_pid))
        wall = end[0] - self.begin[0]
        busy = (end[4][0] - self.begin[4][0]) / max(1, end[4][1] - self.begin[4][1])
        return {
            "seconds": wall,
            "agent": (end[1] - self.begin[1]) / wall * 100,
            "caddy": (end[2] - self.begin[2]) / wall * 100,
            # nan when dockerd restarted meanwhile (others' tests do that)
            "dockerd": (sum(end[3].values()) - sum(self.begin[3].values())) / wall * 100
            if self.dockerd and end[3].keys() == self.begin[3].keys()
            else float("nan"),
            "machine": busy * 100 * (os.cpu_count() or 1),  # % of one core, like the rest
            "rss": statistics.mean(self.rss),
            "rss_peak": max(self.rss),
        }


# -- load (in client processes) -----------------------------------------------------------


class _Pool:
    """Keep-alive connections to Caddy for one Host, at most MAX_CONNECTIONS."""

    def __init__(self, port: int, host: str) -> None:
        self.port = port
        self.request = f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\n\r\n".encode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def get(self) -> tuple[int, float]:
        """One request: (status, latency s); raises on a broken connection or a timeout."""
        async with self.slots:
            conn = self.idle.pop() if self.idle else None
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", self.port)
                reader, writer = conn
                writer.write(self.request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lower = head.lower()
                at = lower.index(b"content-length:") + 15
                length = int(lower[at : lower.index(b"\r\n", at)])
                await reader.readexactly(length)
            except BaseException:
                if conn is not None:
                    conn[1].close()
                raise
            latency = time.perf_counter() - started
            if b"connection: close" in lower:
                writer.close()
            else:
                self.idle.append(conn)
            return status, latency


async def _drive(
    port: int, hosts: list[str], rate: float, start_at: float, seconds: float, window: float
) -> dict[str, Any]:
    pools = [_Pool(port, host) for host in hosts]
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sent = answered = 0
    begin = time.monotonic() + (start_at - time.time())
    window_start = begin + seconds - window

    async def one(pool: _Pool, due: float) -> None:
        nonlocal answered
        try:
            status, latency = await asyncio.wait_for(pool.get(), 10)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if due >= window_start:
                errors[type(exc).__name__] += 1
            return
        answered += 1
        if due >= window_start:
            latencies.append(latency)
            if status != 200:
                errors[f"HTTP {status}"] += 1

    tasks = set()
    total = int(rate * seconds)
    cpu_before = time.process_time()
    late = 0.0
    for i in range(total):
        due = begin + i / rate
        delay = due - time.monotonic()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        task = asyncio.create_task(one(pools[i % len(pools)], due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
    if tasks:
        await asyncio.wait(tasks)
    for pool in pools:
        for _, writer in pool.idle:
            writer.close()
    return {
        "sent": sent,
        "answered": answered,
        "in_window": len(latencies),
        "ok_in_window": len(latencies) - sum(v for k, v in errors.items() if k.startswith("HTTP")),
        "latencies": latencies,
        "errors": dict(errors),
        "cpu": time.process_time() - cpu_before,
        "late": late,
    }


def drive(
    port: int, hosts: list[str], rate: float, start_at: float, seconds: float, window: float
) -> dict[str, Any]:
    return asyncio.run(_drive(port, hosts, rate, start_at, seconds, window))


def _ready(_: int) -> int:
    time.sleep(0.3)  # hold this worker so the next item goes to another
    return os.getpid()


# -- one variant --------------------------------------------------------------------------


def deploy(api: Any, image: str, names: list[str]) -> list[str]:
    """Create the services and wait for them to run; their service ids."""
    services = [
        api.create_service(
            ServiceName=name,
            SourceConfiguration=image_source(image, port=None),
            HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health", "Interval": 1},
        )["Service"]
        for name in names
    ]
    for service in services:
        wait_status(api, service["ServiceArn"], "RUNNING", timeout=180)
    return [service["ServiceId"] for service in services]


def app_lines(data_dir: Path, service_ids: list[str]) -> int:
    """The load's requests (``GET /``) in these services' instance streams. Counted in
    the text, not by line: the app's print() writes the line and its newline apart, so
    two threads' lines sometimes come out joined."""
    count = 0
    for service_id in service_ids:  # the agent also follows other agents' containers
        for path in (data_dir / "logs" / service_id).glob("instance__*.jsonl*"):
            count += path.read_bytes().count(b"GET / HTTP/1.1")
    return count


def metric_requests(endpoint: str) -> int:
    text = httpx.get(f"{endpoint}/metrics", timeout=10).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("slipway_requests_total{")
    )


def run_variant(
    variant: str, args: argparse.Namespace, client: docker.DockerClient, pool: Any
) -> dict[str, Any]:
    names = [f"svc-{variant}{i}" for i in range(args.services)]
    settings = {"reconcile_interval": 2, **VARIANTS[variant]}
    try:  # the agent is gone before its containers are removed, or it replaces them
        with local_stack(**settings) as (registry, caddy, agent):
            image = f"{registry.host}/bench/hello:live"
            push_image(client, LOCAL_IMAGE, image)
            api = agent.client()
            started = time.monotonic()
            service_ids = deploy(api, image, names)
            print(
                f"[{variant}] {len(names)} services running in {time.monotonic() - started:.0f} s"
            )
            hosts = [f"{name}.localhost:{caddy.http_port}" for name in names]
            checks = Counter[str]()

            def answers(name: str) -> bool:
                checks[name] += 1
                return agent.get(name, "/health").status_code == 200

            for name in names:  # every route answers before the clock starts
                wait_for(lambda n=name: answers(n), 30, f"{name} through Caddy")
            assert agent.proc is not None and caddy.process is not None
            pids = (agent.proc.pid, caddy.process.pid)

            time.sleep(3)  # past the deployments' settle work
            idle = Window(*pids)
            idle.start()
            time.sleep(args.idle_seconds)
            idle_figures = idle.stop()

            per_client = [hosts[i :: args.clients] for i in range(args.clients)]
            total_seconds = args.warmup + args.seconds
            start_at = time.time() + 1.0
            pending = pool.starmap_async(
                drive,
                [
                    (
                        caddy.http_port,
                        group,
                        args.rate * len(group) / len(hosts),
                        start_at,
                        total_seconds,
                        args.seconds,
                    )
                    for group in per_client
                ],
                chunksize=1,
            )
            time.sleep(max(0.0, start_at + args.warmup - time.time()))
            window = Window(*pids)
            window.start()
            time.sleep(args.seconds)
            figures = window.stop()
            results = pending.get(timeout=total_seconds + 60)

            answered = sum(r["answered"] for r in results)
            # what the collectors saw of it, once they have caught up
            seen: dict[str, int] = {}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                seen = {
                    "app_lines": app_lines(agent.root / "data", service_ids),
                    "metrics": metric_requests(agent.endpoint) - sum(checks.values()),
                }
                if variant == "off" or min(seen.values()) >= answered:
                    break
                time.sleep(1)
    finally:
        for name in names:
            for container in client.containers.list(
                all=True, filters={"label": f"{LABEL_SERVICE_NAME}={name}"}
            ):
                container.remove(force=True)

    latencies = sorted(lat for r in results for lat in r["latencies"])
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        **figures,
        "idle_agent": idle_figures["agent"],
        "rate": sum(r["ok_in_window"] for r in results) / args.seconds,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "p50": quantiles[49] * 1000,
        "p99": quantiles[98] * 1000,
        "client_cpu": sum(r["cpu"] for r in results) / total_seconds * 100,
        "late": max(r["late"] for r in results),
        "sent": sum(r["sent"] for r in results),
        "answered": answered,
        **seen,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, per variant")
    parser.add_argument("--warmup", type=float, default=5.0, help="load before measuring")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="requests/s in total")
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument("--variants", default="on,off", help="order of the variants")
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    order = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not set(order) <= set(VARIANTS):
        parser.error(f"variants are {', '.join(VARIANTS)}")

    client = docker.from_env()
    client.images.build(path=str(ROOT / "examples" / "hello"), tag=LOCAL_IMAGE, rm=True)
    rows: dict[str, dict[str, Any]] = {}
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.clients) as pool:
        pool.map(_ready, range(args.clients), chunksize=1)  # imports done before any clock
        for variant in order:
            rows[variant] = run_variant(variant, args, client, pool)
            r = rows[variant]
            print(
                f"[{variant}] {r['rate']:.0f} req/s, agent {r['agent']:.2f}% of a core,"
                f" errors {r['error_kinds'] or 0}, client late by at most {r['late']:.3f} s"
            )

    lines = [
        f"### Agent overhead, {time.strftime('%Y-%m-%d')}: {args.services} services,"
        f" {args.rate:.0f} req/s target through Caddy, {args.seconds:.0f} s measured per"
        f" variant, {os.cpu_count()} cores",
        "",
        "| variant | achieved req/s | errors | p50 ms | p99 ms | agent CPU % of a core"
        " | idle agent CPU % | RSS MB | peak RSS MB | caddy CPU % | dockerd CPU %"
        " | load gen CPU % | machine busy % of a core |",
        "| --- |" + " ---: |" * 12,
    ]
    for variant, r in rows.items():
        lines.append(
            f"| {variant} | {r['rate']:.0f} | {r['errors']} | {r['p50']:.2f} | {r['p99']:.2f}"
            f" | {r['agent']:.2f} | {r['idle_agent']:.2f} | {r['rss']:.0f} | {r['rss_peak']:.0f}"
            f" | {r['caddy']:.1f} | {r['dockerd']:.1f} | {r['client_cpu']:.1f}"
            f" | {r['machine']:.0f} |"
        )
    lines.append("")
    if "on" in rows:
        on = rows["on"]
        lines.append(
            f"Collection on: {on['app_lines']} of {on['answered']} answered requests stored"
            f" as instance-stream lines; request metrics counted {on['metrics']}."
        )
    if "on" in rows and "off" in rows:
        on, off = rows["on"], rows["off"]
        delta = on["agent"] - off["agent"]
        lines.append(
            f"Collection (on - off): {delta:+.2f}% of one core under load"
            f" ({on['idle_agent'] - off['idle_agent']:+.2f}% idle), RSS"
            f" {on['rss'] - off['rss']:+.0f} MB; goal < 5%: {'met' if delta < 5 else 'NOT met'}."
        )
    errors = {v: r["error_kinds"] for v, r in rows.items() if r["error_kinds"]}
    if errors:
        lines.append(f"Errors by kind: {errors}")
    table = "\n".join(lines)
    print()
    print(table)
    if args.record:
        record(
            "bench/agent_overhead.py",
            table,
            "The agent's own CPU and RSS while 10 services of the example app take a\n"
            "fixed-rate load through Caddy (separate client processes, loopback), with\n"
            "metrics and logs on (defaults: Caddy access log read by the metrics\n"
            "collector, docker stats, app-log followers storing each request's stdout\n"
            "line) and off (`access_log: off`, `app_logs: false`, no docker stats).\n"
            "Each variant has its own registry, Caddy and agent; CPU from\n"
            "/proc/<pid>/stat over the measured window, % of one core. Goal: on - off\n"
            "under 5% of one core. Before the app-log collector read docker's stream\n"
            "itself and lingered 0.2 s between reads (commit 6628051), one read, wakeup\n"
            "and store write per line made on - off +9.4% of a core in this bench\n"
            "(14.4% vs 5.0%). Other sessions' tests share the machine (see the machine\n"
            "column), which shows in p99.\n",
        )


if __name__ == "__main__":
    main()
