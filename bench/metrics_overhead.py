"""What collecting metrics costs the agent: CPU to read Caddy's access log at 1,000 req/s,
and CPU and time to sample docker stats of 10 containers per stats interval.

Usage: .venv/bin/python bench/metrics_overhead.py [--seconds 60] [--rate 1000]
       [--containers 10] [--no-docker] [--record]

The log part writes seconds x rate synthetic lines in Caddy 2.6.2's access-log format
(a captured line, varied: 10 services, 85% 200 / 10% 404 / 5% 500, a browser's request
headers), then times ``Metrics.collect_requests`` as the collector runs it: one read per
5 s of traffic. For comparison it times the parse alone three ways. The docker part starts
busybox containers and times ``DockerEngine.instance_stats`` (one-shot, concurrent)
against plain ``stream=False`` calls. Goal: under 5% of one core at 1,000 req/s.
--record appends the table to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import record

from slipway.backends.docker_engine import DockerEngine
from slipway.observe.metrics import _ACCESS_LINE, Metrics

# One line from Caddy 2.6.2 with Router(access_log=...)'s config.
CADDY_LINE = (
    '{"level":"info","ts":1795616053.743354,"logger":"http.log.access.slipway-access",'
    '"msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":"48588",'
    '"proto":"HTTP/1.1","method":"GET","host":"hello.localhost:18080","uri":"/?q=1&x=%22",'
    '"headers":{"Accept-Encoding":["gzip, deflate"],"Connection":["keep-alive"],'
    '"User-Agent":["python-httpx/0.28.1"],"Accept":["*/*"]}},"user_id":"",'
    '"duration":0.003555495,"size":10,"status":200,"resp_headers":{"Date":'
    '["Wed, 25 Nov 2026 14:14:13 GMT"],"Content-Length":["10"],"Server":'
    '["Caddy","BaseHTTP/0.6 Python/3.11.7"]}}'
)
BROWSER_HEADERS = {
    "User-Agent": [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36"
    ],
    "Accept": ["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
    "Accept-Encoding": ["gzip, deflate, br"],
    "Accept-Language": ["en-US,en;q=0.9"],
    "Connection": ["keep-alive"],
}
SERVICES = 10
BATCH_SECONDS = 5  # the collector's default interval


def synthetic_lines(seconds: int, rate: int, start: float) -> list[bytes]:
    rng = random.Random(42)
    template = json.loads(CADDY_LINE)
    template["request"]["headers"] = BROWSER_HEADERS
    lines = []
    for i in range(seconds * rate):
        template["ts"] = start + i / rate
        template["request"]["host"] = f"svc{i % SERVICES}.localhost:8080"
        template["request"]["remote_port"] = str(30000 + i % 30000)
        template["request"]["uri"] = f"/items/{rng.randrange(10**6)}?page={i % 7}"
        template["duration"] = round(rng.lognormvariate(-4.5, 1.2), 9)
        roll = rng.random()
        template["status"] = 200 if roll < 0.85 else 404 if roll < 0.95 else 500
        lines.append(json.dumps(template, separators=(",", ":")).encode() + b"\n")
    return lines


def cpu_time(fn: Callable[[], object], repeat: int = 3) -> float:
    """Least process CPU seconds over ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def bench_log(seconds: int, rate: int) -> list[tuple[str, float]]:
    start = time.time() - seconds
    lines = synthetic_lines(seconds, rate, start)
    data = b"".join(lines)
    hosts = {f"svc{i}.localhost": f"svc{i}" for i in range(SERVICES)}
    total = len(lines)
    rows: list[tuple[str, float]] = []

    def collect_incrementally() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "access.log"
            metrics = Metrics(path)
            per_batch = rate * BATCH_SECONDS
            read = 0
            with path.open("ab") as fh:
                for first in range(0, total, per_batch):
                    fh.write(b"".join(lines[first : first + per_batch]))
                    fh.flush()
                    started = time.process_time()
                    read += metrics.collect_requests(hosts)
                    spent[0] += time.process_time() - started
            assert read == total, read
            assert metrics.lines_unparsed == 0

    spent = [0.0]
    collect_incrementally()  # warm up the page cache and the regex
    spent = [0.0]
    collect_incrementally()
    rows.append(("collect_requests, one read per 5 s of traffic", spent[0]))

    with tempfile.NamedTemporaryFile() as whole:
        whole.write(data)
        whole.flush()
        everything = Path(whole.name)
        cpu = cpu_time(lambda: Metrics(everything, from_start=True).collect_requests(hosts))
    rows.append(("collect_requests, the whole log at once", cpu))
    rows.append(
        ("parse only: one regex over each batch", cpu_time(lambda: _ACCESS_LINE.findall(data)))
    )

    def regex_per_line() -> None:
        for raw in data.splitlines():
            _ACCESS_LINE.search(raw)

    def json_per_line() -> None:
        for raw in data.splitlines():
            item = json.loads(raw)
            (item["ts"], item["request"]["host"], item["duration"], item["status"])

    rows.append(("parse only: the regex line by line", cpu_time(regex_per_line)))
    rows.append(("parse only: json.loads line by line", cpu_time(json_per_line)))

    def render() -> None:
        metrics = Metrics(Path("/nonexistent"))
        metrics.collect_requests(hosts)
        for _ in range(100):
            metrics.prometheus()

    scrape = cpu_time(render) / 100
    rows.append((f"prometheus() for {SERVICES} services, one scrape", scrape))
    # CPU seconds -> ms per 1,000 lines; the scrape stays ms per scrape
    return [(name, cpu * 1000 / total * 1000) for name, cpu in rows[:-1]] + [
        (rows[-1][0], rows[-1][1] * 1000)
    ]


def dockerd_cpu() -> float | None:
    """dockerd's CPU seconds so far, when this user may read them."""
    try:
        pid = next(
            p for p in os.listdir("/proc") if p.isdigit() and _comm(p) in ("dockerd", "docker-init")
        )
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (StopIteration, OSError):
        return None


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def bench_docker(count: int, rounds: int = 3) -> list[tuple[str, float, float, float | None]]:
    import docker

    from testkit.images import TEST_LABEL, busybox_image

    client = docker.from_env()
    image = busybox_image(client)
    containers = [
        client.containers.run(
            image,
            ["sleep", "600"],
            detach=True,
            labels={TEST_LABEL: "bench-metrics"},
            nano_cpus=500_000_000,
            mem_limit="64m",
        )
        for _ in range(count)
    ]
    ids = [c.id for c in containers]
    rows = []
    try:
        time.sleep(1.5)

        def timed(name: str, fn: Callable[[], object]) -> None:
            walls, cpus, daemon = [], [], []
            for _ in range(rounds):
                before_daemon = dockerd_cpu()
                wall, cpu = time.monotonic(), time.process_time()
                fn()
                cpus.append(time.process_time() - cpu)
                walls.append(time.monotonic() - wall)
                after_daemon = dockerd_cpu()
                if before_daemon is not None and after_daemon is not None:
                    daemon.append(after_daemon - before_daemon)
            rows.append((name, min(walls), min(cpus), min(daemon) if daemon else None))

        engine = DockerEngine(client)
        timed("cpu limits (inspect; once per container)", lambda: engine.cpu_limits(ids))
        timed("instance_stats: one-shot, concurrent", lambda: engine.instance_stats(ids))
        timed(
            "stream=False, one after another",
            lambda: [client.api.stats(i, stream=False) for i in ids],
        )
    finally:
        for container in containers:
            container.remove(force=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rate", type=int, default=1000, help="requests per second")
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--stats-interval", type=float, default=15.0)
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()

    log_rows = bench_log(args.seconds, args.rate)
    lines = [
        f"### Metrics collection, {time.strftime('%Y-%m-%d')}: {args.seconds} s x "
        f"{args.rate} req/s ({args.seconds * args.rate} lines), {SERVICES} services,"
        f" {os.cpu_count()} cores",
        "",
        "| access log | CPU ms per 1,000 lines | % of one core at the rate |",
        "| --- | ---: | ---: |",
    ]
    for name, per_thousand in log_rows[:-1]:
        share = per_thousand / 1000 * args.rate / 10  # ms per s -> % of a core
        lines.append(f"| {name} | {per_thousand:.2f} | {share:.2f}% |")
    collector_share = log_rows[0][1] / 1000 * args.rate / 10
    scrape_name, scrape_ms = log_rows[-1]
    lines.append(f"| {scrape_name} | {scrape_ms:.2f} ms per scrape | |")
    stats_share = 0.0
    if not args.no_docker:
        docker_rows = bench_docker(args.containers)
        lines += [
            "",
            f"| docker, {args.containers} containers | wall s | agent CPU ms | dockerd CPU ms |"
            f" agent % of a core every {args.stats_interval:g} s |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name, wall, cpu, daemon in docker_rows:
            daemon_text = f"{daemon * 1000:.0f}" if daemon is not None else "n/a"
            share = cpu / args.stats_interval * 100
            lines.append(
                f"| {name} | {wall:.2f} | {cpu * 1000:.1f} | {daemon_text} | {share:.3f}% |"
            )
        stats_share = docker_rows[1][2] / args.stats_interval * 100
    total = collector_share + stats_share
    lines += [
        "",
        f"Collector total at {args.rate} req/s: {total:.2f}% of one core"
        f" (goal < 5%: {'met' if total < 5 else 'NOT met'}).",
    ]
    table = "\n".join(lines)
    print()
    print(table)
    if args.record:
        record(
            "bench/metrics_overhead.py",
            table,
            "The metrics collector's own cost. Access log: synthetic lines in Caddy"
            " 2.6.2's\nformat read as the collector does (one read per 5 s of"
            " traffic), and the parse\nalone three ways. Docker: the agent's CPU for"
            " one round of stats of every\ncontainer (its share of a core at the"
            " stats interval) and dockerd's CPU meanwhile.\n",
        )


if __name__ == "__main__":
    main()
