"""Metrics against the real parts: Caddy's access log, written with the Router's config,
counted exactly per service and status class; docker stats of running containers."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import httpx
import pytest

from slipway.backends.docker_engine import DockerEngine
from slipway.observe.metrics import Metrics
from slipway.routing.router import Route, Router
from testkit.harness import CaddyProcess, wait_for
from testkit.images import TEST_LABEL

pytestmark = pytest.mark.e2e

SLOW = 0.3  # seconds /slow takes, to land in the (0.25, 0.5] bucket


class Answers(BaseHTTPRequestHandler):
    """200 for /ok and /slow, 404 for /missing, 500 for /boom."""

    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without this, delayed ACKs add ~40 ms each
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/slow":
            time.sleep(SLOW)
        status = {"/missing": 404, "/boom": 500}.get(self.path, 200)
        body = f"{status}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def counts(metrics: Metrics, service: str) -> dict[str, int]:
    """Counters of one service, read back from the Prometheus text."""
    text = metrics.prometheus().splitlines()
    samples = dict(row.rsplit(" ", 1) for row in text if not row.startswith("#"))

    def get(name: str, **labels: str) -> int:
        # prometheus_client writes labels in name order
        pairs = sorted({"service": service, **labels}.items())
        return int(float(samples[name + "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"]))

    latency = "slipway_request_latency_seconds"
    return {
        "requests": get("slipway_requests_total"),
        **{c: get("slipway_responses_total", status_class=c) for c in ("2xx", "4xx", "5xx")},
        "latency_count": get(f"{latency}_count"),
        "le_0.25": get(f"{latency}_bucket", le="0.25"),
        "le_0.5": get(f"{latency}_bucket", le="0.5"),
    }


def test_requests_through_caddy_counted_exactly(
    caddy: CaddyProcess, upstream: str, tmp_path: Path
) -> None:
    access_log = tmp_path / "logs" / "access.log"  # Caddy makes the directory
    router = Router(caddy.admin_url, caddy.http_port, access_log=access_log)
    routes = [Route("alpha.localhost", (upstream,)), Route("beta.localhost", (upstream,))]
    assert router.apply(routes)
    metrics = Metrics(access_log)
    hosts = {"alpha.localhost": "alpha", "beta.localhost": "beta", "gamma.localhost": "gamma"}
    sent = {"alpha": {"/ok": 37, "/missing": 11, "/boom": 7, "/slow": 3}, "beta": {"/ok": 5}}
    url = f"http://127.0.0.1:{caddy.http_port}"
    with httpx.Client(timeout=10) as client:

        def send(host: str, path: str, n: int, expected: int | None = None) -> None:
            for _ in range(n):
                response = client.get(f"{url}{path}", headers={"Host": host})
                if expected is not None:
                    assert response.status_code == expected

        send("alpha.localhost", "/ok", 20, 200)
        send("Alpha.LOCALHOST:80", "/missing", 11, 404)  # host case and port don't matter
        send(f"beta.localhost:{caddy.http_port}", "/ok", 5, 200)
        send("nobody.localhost", "/ok", 4, 404)  # Caddy's own 404: no service's
        # a reload (a new route) in the middle keeps the same log going
        assert router.apply([*routes, Route("gamma.localhost", (), paused=True)])
        send("alpha.localhost", "/ok", 17, 200)
        send("alpha.localhost", "/boom", 7, 500)
        send("alpha.localhost", "/slow", 3, 200)
        send("gamma.localhost", "/ok", 2, 503)

    total_lines = 20 + 11 + 5 + 4 + 17 + 7 + 3 + 2
    read = [0]

    def read_up_to(lines: int) -> bool:
        read[0] += metrics.collect_requests(hosts)
        return read[0] >= lines

    wait_for(lambda: read_up_to(total_lines), timeout=10, what="Caddy's access lines")
    # Nothing more: a last request of no service's is, once read, the only line after.
    httpx.get(f"{url}/ok", headers={"Host": "last.localhost"}, timeout=10)
    wait_for(lambda: read_up_to(total_lines + 1), timeout=10, what="the last access line")
    assert read[0] == total_lines + 1

    alpha = counts(metrics, "alpha")
    sent_alpha = sum(sent["alpha"].values())
    assert alpha == {
        "requests": sent_alpha,
        "2xx": 37 + 3,
        "4xx": 11,
        "5xx": 7,
        "latency_count": sent_alpha,
        "le_0.25": sent_alpha - 3,
        "le_0.5": sent_alpha,
    }
    beta = counts(metrics, "beta")
    assert (beta["requests"], beta["2xx"], beta["4xx"], beta["5xx"]) == (5, 5, 0, 0)
    gamma = counts(metrics, "gamma")
    assert (gamma["requests"], gamma["5xx"]) == (2, 2)
    assert metrics.lines_unparsed == 0
    assert "nobody" not in metrics.prometheus()
    (row,) = metrics.recent("alpha", 1)
    if row["requests"] == sent_alpha:  # not when the minute turned during the test
        assert row["p99"] is not None and 0.25 < row["p99"] <= 0.5


@pytest.mark.alone  # the busy loop must get all of its half CPU
def test_docker_stats_of_running_containers(
    docker_client: docker.DockerClient, busybox_image: str, tmp_path: Path
) -> None:
    label = {TEST_LABEL: f"metrics-{uuid.uuid4().hex[:8]}"}
    busy = docker_client.containers.run(
        busybox_image,
        ["sh", "-c", "while :; do :; done"],
        detach=True,
        labels=label,
        nano_cpus=500_000_000,  # half a CPU: a busy loop uses all of it
        mem_limit="64m",
    )
    idle = docker_client.containers.run(
        busybox_image, ["sleep", "300"], detach=True, labels=label, mem_limit="32m"
    )
    try:
        ids = [busy.id, idle.id, "slipway-no-such-container"]
        engine = DockerEngine(docker_client)
        limits = engine.cpu_limits(ids)
        assert limits == {busy.id: 0.5, idle.id: None}
        metrics = Metrics(tmp_path / "access.log")
        started = time.monotonic()
        first = engine.instance_stats(ids)
        elapsed = time.monotonic() - started
        assert set(first) == {busy.id, idle.id}  # the missing one left out
        assert elapsed < 3, f"two one-shot stats took {elapsed:.1f}s"
        metrics.collect_resources(
            [("busy", busy.id, first[busy.id]), ("idle", idle.id, first[idle.id])],
            cpu_limits=limits,
        )
        time.sleep(2)
        second = engine.instance_stats(ids)
        metrics.collect_resources(
            [("busy", busy.id, second[busy.id]), ("idle", idle.id, second[idle.id])],
            cpu_limits=limits,
        )
        gauges = {}
        for row in metrics.prometheus().splitlines():
            if row.startswith("slipway_instance_"):
                name, number = row.rsplit(" ", 1)
                gauges[name.split("{")[0], 'service="busy"' in name] = float(number)
        cpu, mem = (
            "slipway_instance_cpu_utilization_percent",
            "slipway_instance_memory_utilization_percent",
        )
        assert 70 <= gauges[cpu, True] <= 110, gauges  # all of its half CPU
        assert gauges[cpu, False] < 5, gauges
        assert 0 < gauges[mem, True] < 50 and 0 < gauges[mem, False] < 50, gauges
    finally:
        busy.remove(force=True)
        idle.remove(force=True)


def test_counts_stay_exact_when_caddy_rolls_the_log(
    caddy: CaddyProcess, upstream: str, tmp_path: Path
) -> None:
    access_log = tmp_path / "access.log"
    router = Router(caddy.admin_url, caddy.http_port, access_log=access_log, access_log_roll_mb=1)
    router.apply([Route("alpha.localhost", (upstream,))])
    metrics = Metrics(access_log)
    hosts = {"alpha.localhost": "alpha"}
    read, sent = 0, 0
    with httpx.Client(timeout=10, headers={"Host": "alpha.localhost"}) as client:
        # ~450 bytes a line: a roll every ~2,300 requests; read between rolls as the
        # collector does, so that lines are left in the file Caddy rolls away.
        for _ in range(6):
            for _ in range(1000):
                assert client.get(f"http://127.0.0.1:{caddy.http_port}/ok").status_code == 200
            sent += 1000
            read += metrics.collect_requests(hosts)
    rolled = [p for p in tmp_path.iterdir() if p.name.startswith("access-")]
    assert rolled, "Caddy did not roll the log"

    def all_read() -> bool:
        nonlocal read
        read += metrics.collect_requests(hosts)
        return read >= sent

    wait_for(all_read, timeout=10, what="every access line")
    assert read == sent
    assert counts(metrics, "alpha")["2xx"] == sent
    assert metrics.lines_unparsed == 0
