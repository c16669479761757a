"""Per-service request figures through HAProxy without HAProxy: its counters read as
deltas per host, sampled latencies read from a datagram socket, both into ``Metrics``
under the names Caddy's access log feeds."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from slipway.errors import InvalidRequest, RouterError
from slipway.observe.metrics import Metrics
from slipway.routing.caddyconfig import Route
from slipway.routing.haproxy import HaproxyRouter
from slipway.routing.haproxyconfig import DataPlane, render_config
from slipway.routing.haproxytraffic import (
    Deltas,
    SampleSocket,
    Served,
    parse_counters,
    parse_sample,
    served,
)
from testkit.harness import wait_for

HEADER = "# pxname,svname,scur,addr,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,req_tot,\n"


def stat(**backends: tuple[int, int, int]) -> str:
    """``show stat`` with BACKEND rows of (requests, 2xx, 4xx), and a server row that
    must not count."""
    rows = [HEADER, "slipway,FRONTEND,0,,0,99,0,0,0,99,\n"]
    for name, (requests, ok, missing) in backends.items():
        rows.append(f"{name},127.77.0.1_8080,0,127.77.0.1:8080,0,50,0,0,0,50,\n")
        rows.append(f"{name},BACKEND,0,,0,{ok},0,{missing},0,{requests},\n")
    return "".join(rows)


def test_counters_per_backend_and_their_deltas() -> None:
    assert parse_counters(stat(s0=(5, 4, 1))) == {"s0": (5, 0, 4, 0, 1, 0)}
    with pytest.raises(RouterError, match="show stat"):
        parse_counters("Unknown command.\n")
    with pytest.raises(RouterError, match="lacks a column"):
        parse_counters("# pxname,svname,scur\n")
    deltas = Deltas()
    assert deltas.step({"s0": (5, 0, 5, 0, 0, 0)}) == {}  # the baseline
    assert deltas.step({"s0": (8, 0, 7, 0, 1, 0), "s1": (0,) * 6}) == {"s0": (3, 0, 2, 0, 1, 0)}
    assert deltas.step({"s0": (8, 0, 7, 0, 1, 0)}) == {}
    # HAProxy restarted: its counters began again at zero.
    assert deltas.step({"s0": (2, 0, 2, 0, 0, 0)}) == {"s0": (2, 0, 2, 0, 0, 0)}


def test_samples_and_counts_go_to_the_host_of_their_backend() -> None:
    assert parse_sample(b"s3 200 12\n") == ("s3", 0.012)
    assert parse_sample(b"s3 -1 -1\n") is None  # no answer: no latency
    assert parse_sample(b"garbage") is None
    figures = served(
        {"s0": (3, 0, 2, 0, 1, 0), "b_caddy": (9, 0, 9, 0, 0, 0)},
        {"s0": [0.01], "s1": [0.2, 0.3], "s9": [1.0]},
        {"s0": "a.localhost", "s1": "b.localhost"},
        weight=10,
    )
    assert figures == {
        "a.localhost": Served(3, {"2xx": 2, "4xx": 1}, (0.01,), 10),
        "b.localhost": Served(0, {}, (0.2, 0.3), 10),
    }


def test_metrics_count_served_under_the_same_names() -> None:
    metrics = Metrics(None, clock=lambda: 600.0)
    hosts = {"a.localhost": "alpha"}
    metrics.count_served(hosts, {"A.localhost:80": Served(3, {"2xx": 2, "4xx": 1}, (0.02,), 3)})
    metrics.count_served(hosts, {"nobody.localhost": Served(7, {"2xx": 7})})
    text = metrics.prometheus()
    assert 'slipway_requests_total{service="alpha"} 3.0' in text
    assert 'slipway_responses_total{service="alpha",status_class="2xx"} 2.0' in text
    assert 'slipway_responses_total{service="alpha",status_class="4xx"} 1.0' in text
    # The sampled latency stands for 3 requests.
    assert 'slipway_request_latency_seconds_bucket{le="0.01",service="alpha"} 0.0' in text
    assert 'slipway_request_latency_seconds_bucket{le="0.025",service="alpha"} 3.0' in text
    assert 'slipway_request_latency_seconds_count{service="alpha"} 3.0' in text
    assert "nobody" not in text
    (row,) = metrics.recent("alpha", 1)
    assert row["requests"] == 3 and row["2xx"] == 2 and row["p50"] is not None


def test_sample_socket_reads_datagrams_until_closed(tmp_path: Path) -> None:
    path = tmp_path / "samples.sock"
    path.write_text("left by an earlier agent")
    samples = SampleSocket(path)
    samples.open()
    samples.open()  # open already: nothing more
    assert path.stat().st_mode & 0o777 == 0o600
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        for line in (b"s0 200 5\n", b"s0 503 7\n", b"nonsense\n", b"s1 200 1000\n"):
            sender.sendto(line, str(path))
    got: dict[str, list[float]] = {}

    def all_read() -> bool:
        for backend, values in samples.take().items():
            got.setdefault(backend, []).extend(values)
        return sum(map(len, got.values())) == 3

    wait_for(all_read, 5, "the datagrams")
    assert got == {"s0": [0.005, 0.007], "s1": [1.0]}
    samples.close()
    assert not path.exists()


def test_sample_socket_reads_a_burst_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "samples.sock"
    samples = SampleSocket(path)
    samples.open()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        for n in range(300):  # more than one batch, less than the socket's queue
            sender.sendto(f"s0 200 {n}".encode(), str(path))
    got: list[float] = []
    wait_for(lambda: got.extend(samples.take().get("s0", [])) or len(got) == 300, 5, "all")
    assert got == [n / 1000 for n in range(300)]  # none lost, in order
    samples.close()


def test_sample_socket_that_cannot_bind_says_where(tmp_path: Path) -> None:
    with pytest.raises(RouterError, match="samples socket"):
        SampleSocket(tmp_path / "no" / "such" / "dir.sock").open()


def test_config_samples_latency_only_when_asked() -> None:
    common = {
        "http_port": 80,
        "socket": Path("/d/api.sock"),
        "map_file": Path("/d/hosts.map"),
        "caddy_http": Path("/d/c.sock"),
        "backends": 2,
    }
    text = render_config(**common, samples=Path("/d/samples.sock"), sample=10)
    assert "    log /d/samples.sock format raw local0 info\n" in text
    assert "    http-request set-log-level silent if { rand(10) gt 0 }\n" in text
    assert "rand(" not in render_config(**common, samples=Path("/d/samples.sock"), sample=1)
    assert '    log-format "%b %ST %Ta %s"\n' in text
    assert "samples.sock" not in render_config(**common, samples=Path("/d/s.sock"), sample=0)
    with pytest.raises(InvalidRequest, match="haproxy_latency_sample"):
        DataPlane(latency_sample=-1).check()


class StatRuntime:
    """A Runtime API that answers ``show stat`` with ``text`` and takes every change."""

    def __init__(self) -> None:
        self.text = stat()
        self.map: dict[str, str] = {}

    def command(self, line: str) -> str:
        if line == "show stat -1 2 -1":
            return self.text
        if line.startswith("show map"):
            return "".join(f"0x1 {h} {b}\n" for h, b in self.map.items())
        if line.startswith("show"):
            return ""
        words = line.split()
        if words[:2] == ["add", "map"]:
            self.map[words[3]] = words[4]
        return "New server registered.\n" if words[:2] == ["add", "server"] else ""


class NoCaddy:
    http_port = 8080

    def apply(self, routes: list[Route]) -> bool:
        return False


def test_router_served_maps_pool_backends_to_hosts(tmp_path: Path) -> None:
    runtime = StatRuntime()
    router = HaproxyRouter(
        NoCaddy(),  # type: ignore[arg-type]
        directory=tmp_path,
        caddy_http=tmp_path / "c.sock",
        backends=2,
        latency_sample=4,
        runtime=runtime,
    )
    runtime.text = stat(s0=(10, 10, 0), s1=(4, 4, 0))
    assert router.served() == {}  # the baseline
    router.apply([Route("a.localhost", ("127.77.0.1:8080",)), Route("p.localhost", (), True)])
    assert runtime.map == {"a.localhost": "s0", "p.localhost": "b_paused"}
    runtime.text = stat(s0=(13, 12, 1), s1=(6, 6, 0), b_paused=(5, 0, 0))
    router.samples.add(b"s0 200 30\n")
    assert router.served() == {"a.localhost": Served(3, {"2xx": 2, "4xx": 1}, (0.03,), 4)}
