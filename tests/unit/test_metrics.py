"""Metrics: Caddy 2.6.2 access-log lines into counters and histograms (offsets, rolls,
truncation, unknown hosts), Prometheus text, per-minute rows, docker stats math, the
collector loop and the HTTP endpoints."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from slipway.api.observe import metrics_router
from slipway.backends.docker_engine import DockerEngine
from slipway.backends.fake import FakeBackend
from slipway.errors import InvalidRequest, UnrecognizedClient
from slipway.jobs import Jobs
from slipway.observe.figures import histogram_quantile
from slipway.observe.history import MetricsHistory
from slipway.observe.metrics import (
    _ACCESS_LINE,
    Metrics,
    _parse_json_line,
    cpu_percent,
    memory_percent,
    normalize_host,
)
from slipway.observe.sampling import MetricsCollector
from slipway.store import Store
from slipway.vault import Vault

# Captured from a real Caddy 2.6.2 run with Router(access_log=...)'s config: hello
# proxied to a server answering 200 / 404 / 500 / 501 (HEAD, POST), a request for an
# unknown host (Caddy's 404), a paused service (503), a header that imitates the fields
# we read, and a dead upstream (502 after the 5 s try_duration).
CADDY_LINES = [
    (
        '{"level":"info","ts":1795616053.743354,"logger":"http.log.access.slipway-acces'
        's","msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":"4'
        '8588","proto":"HTTP/1.1","method":"GET","host":"hello.localhost:18080","uri":"'
        '/?q=1&x=%22","headers":{"Accept-Encoding":["gzip, deflate"],"Connection":["kee'
        'p-alive"],"User-Agent":["python-httpx/0.28.1"],"Accept":["*/*"]}},"user_id":""'
        ',"duration":0.003555495,"size":10,"status":200,"resp_headers":{"Date":["Wed, 2'
        '5 Nov 2026 14:14:13 GMT"],"Content-Length":["10"],"Server":["Caddy","BaseHTTP/'
        '0.6 Python/3.11.7"]}}'
    ),
    (
        '{"level":"error","ts":1795616053.7875638,"logger":"http.log.access.slipway-acc'
        'ess","msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":'
        '"48588","proto":"HTTP/1.1","method":"GET","host":"Hello.LOCALHOST:18080","uri"'
        ':"/404/missing","headers":{"Accept":["*/*"],"Accept-Encoding":["gzip, deflate"'
        '],"Connection":["keep-alive"],"User-Agent":["python-httpx/0.28.1"]}},"user_id"'
        ':"","duration":0.04222563,"size":10,"status":404,"resp_headers":{"Server":["Ca'
        'ddy","BaseHTTP/0.6 Python/3.11.7"],"Date":["Wed, 25 Nov 2026 14:14:13 GMT"],"C'
        'ontent-Length":["10"]}}'
    ),
    (
        '{"level":"error","ts":1795616053.8315706,"logger":"http.log.access.slipway-acc'
        'ess","msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":'
        '"48588","proto":"HTTP/1.1","method":"GET","host":"hello.localhost","uri":"/500'
        '","headers":{"Accept":["*/*"],"Accept-Encoding":["gzip, deflate"],"Connection"'
        ':["keep-alive"],"User-Agent":["python-httpx/0.28.1"]}},"user_id":"","duration"'
        ':0.042642337,"size":10,"status":500,"resp_headers":{"Server":["Caddy","BaseHTT'
        'P/0.6 Python/3.11.7"],"Date":["Wed, 25 Nov 2026 14:14:13 GMT"],"Content-Length'
        '":["10"]}}'
    ),
    (
        '{"level":"error","ts":1795616053.833031,"logger":"http.log.access.slipway-acce'
        'ss","msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":"'
        '48588","proto":"HTTP/1.1","method":"GET","host":"nobody.localhost:18080","uri"'
        ':"/","headers":{"Accept":["*/*"],"Accept-Encoding":["gzip, deflate"],"Connecti'
        'on":["keep-alive"],"User-Agent":["python-httpx/0.28.1"]}},"user_id":"","durati'
        'on":0.000021028,"size":23,"status":404,"resp_headers":{"Content-Type":["text/p'
        'lain; charset=utf-8"],"Server":["Caddy"]}}'
    ),
    (
        '{"level":"error","ts":1795616053.8336203,"logger":"http.log.access.slipway-acc'
        'ess","msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":'
        '"48588","proto":"HTTP/1.1","method":"GET","host":"paused.localhost:18080","uri'
        '":"/","headers":{"Connection":["keep-alive"],"User-Agent":["python-httpx/0.28.'
        '1"],"Accept":["*/*"],"Accept-Encoding":["gzip, deflate"]}},"user_id":"","durat'
        'ion":0.000005528,"size":17,"status":503,"resp_headers":{"Server":["Caddy"],"Co'
        'ntent-Type":["text/plain; charset=utf-8"]}}'
    ),
    (
        '{"level":"error","ts":1795616053.835101,"logger":"http.log.access.slipway-acce'
        'ss","msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":"'
        '48588","proto":"HTTP/1.1","method":"HEAD","host":"hello.localhost:18080","uri"'
        ':"/head","headers":{"Accept":["*/*"],"Accept-Encoding":["gzip, deflate"],"Conn'
        'ection":["keep-alive"],"User-Agent":["python-httpx/0.28.1"]}},"user_id":"","du'
        'ration":0.00082189,"size":0,"status":501,"resp_headers":{"Server":["Caddy","Ba'
        'seHTTP/0.6 Python/3.11.7"],"Content-Type":["text/html;charset=utf-8"],"Content'
        '-Length":["357"],"Date":["Wed, 25 Nov 2026 14:14:13 GMT"]}}'
    ),
    (
        '{"level":"error","ts":1795616053.8368678,"logger":"http.log.access.slipway-acc'
        'ess","msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":'
        '"48588","proto":"HTTP/1.1","method":"POST","host":"hello.localhost:18080","uri'
        '":"/post","headers":{"Accept":["*/*"],"Accept-Encoding":["gzip, deflate"],"Con'
        'nection":["keep-alive"],"User-Agent":["python-httpx/0.28.1"],"Content-Length":'
        '["100"]}},"user_id":"","duration":0.000981962,"size":357,"status":501,"resp_he'
        'aders":{"Date":["Wed, 25 Nov 2026 14:14:13 GMT"],"Content-Type":["text/html;ch'
        'arset=utf-8"],"Content-Length":["357"],"Server":["Caddy","BaseHTTP/0.6 Python/'
        '3.11.7"]}}'
    ),
    (
        '{"level":"info","ts":1795616053.8381267,"logger":"http.log.access.slipway-acce'
        'ss","msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":"'
        '48588","proto":"HTTP/1.1","method":"GET","host":"hello.localhost:18080","uri":'
        '"/tricky","headers":{"Accept":["*/*"],"Accept-Encoding":["gzip, deflate"],"Con'
        'nection":["keep-alive"],"X-Evil":["\\",\\"host\\":\\"paused.localhost\\",\\"status\\"'
        ':500,\\"duration\\":9"],"User-Agent":["ua \\"quoted\\" \\\\ back"]}},"user_id":"","d'
        'uration":0.000692014,"size":10,"status":200,"resp_headers":{"Server":["Caddy",'
        '"BaseHTTP/0.6 Python/3.11.7"],"Date":["Wed, 25 Nov 2026 14:14:13 GMT"],"Conten'
        't-Length":["10"]}}'
    ),
    (
        '{"level":"error","ts":1795616058.849907,"logger":"http.log.access.slipway-acce'
        'ss","msg":"handled request","request":{"remote_ip":"127.0.0.1","remote_port":"'
        '48588","proto":"HTTP/1.1","method":"GET","host":"down.localhost:18080","uri":"'
        '/","headers":{"Accept":["*/*"],"Accept-Encoding":["gzip, deflate"],"Connection'
        '":["keep-alive"],"User-Agent":["python-httpx/0.28.1"]}},"user_id":"","duration'
        '":5.011179568,"size":0,"status":502,"resp_headers":{"Server":["Caddy"]}}'
    ),
]

HOSTS = {"hello.localhost": "hello", "paused.localhost": "paused", "down.localhost": "down"}
NOW = 1795616070.0  # the same minute as the captured lines
MINUTE = int(NOW) // 60 * 60
HELLO_DURATIONS = [0.003555495, 0.04222563, 0.042642337, 0.00082189, 0.000981962, 0.000692014]


def write(path: Path, lines: list[str], mode: str = "a") -> None:
    with path.open(mode) as fh:
        fh.write("".join(line + "\n" for line in lines))


def line(host: str, status: int = 200, duration: float = 0.01, ts: float = NOW) -> str:
    """A line shaped like Caddy 2.6's, for tests that need many or specific ones."""
    item = json.loads(CADDY_LINES[0])
    item["ts"], item["duration"], item["status"] = ts, duration, status
    item["request"]["host"] = host
    return json.dumps(item, separators=(",", ":"))


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "caddy" / "access.log"


@pytest.fixture
def metrics(log: Path) -> Metrics:
    log.parent.mkdir()
    return Metrics(log, clock=lambda: NOW)


def parse_prometheus(text: str) -> dict[tuple[str, frozenset], float]:
    """A strict little reader of the text format 0.0.4: every sample belongs to a family
    declared by # HELP and # TYPE before it; returns {(name, labels): value}."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: dict[tuple[str, frozenset], float] = {}
    sample = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
    for row in text.splitlines():
        if row.startswith("# HELP "):
            name = row.split()[2]
            assert name not in helps
            helps.add(name)
        elif row.startswith("# TYPE "):
            _, _, name, kind = row.split()
            assert kind in ("counter", "gauge", "histogram") and name not in types
            types[name] = kind
        else:
            match = sample.fullmatch(row)
            assert match, row
            name, raw_labels, value = match.groups()
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            family = family if types.get(family) == "histogram" else name
            assert family in types and family in helps, row
            labels = []
            rest = raw_labels or ""
            while rest:
                lm = label.match(rest)
                assert lm, row
                raw = re.sub(r"\\(.)", lambda e: "\n" if e[1] == "n" else e[1], lm.group(2))
                labels.append((lm.group(1), raw))
                rest = rest[lm.end() :]
            key = (name, frozenset(labels))
            assert key not in samples, row
            samples[key] = float(value)
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


# -- reading Caddy's lines ---------------------------------------------------------------


def test_regex_reads_what_json_reads_on_caddy_lines() -> None:
    for raw in CADDY_LINES:
        (fast,) = _ACCESS_LINE.findall(raw.encode())
        ts, host, duration, status = _parse_json_line(raw.encode())
        assert (float(fast[0]), fast[1].decode(), float(fast[2]), int(fast[3])) == (
            ts,
            host,
            duration,
            status,
        )


def test_host_normalized_like_the_hosts_map() -> None:
    assert normalize_host("Hello.LOCALHOST:18080") == "hello.localhost"
    assert normalize_host("hello.localhost") == "hello.localhost"
    assert normalize_host("hello.localhost.:80") == "hello.localhost"
    assert normalize_host("[::1]:8080") == "[::1]"


def test_caddy_lines_counted_per_service(log: Path, metrics: Metrics) -> None:
    write(log, CADDY_LINES)
    assert metrics.collect_requests(HOSTS) == 9
    s = parse_prometheus(metrics.prometheus())
    assert value(s, "slipway_requests_total", service="hello") == 6
    assert value(s, "slipway_responses_total", service="hello", status_class="2xx") == 2
    assert value(s, "slipway_responses_total", service="hello", status_class="4xx") == 1
    assert value(s, "slipway_responses_total", service="hello", status_class="5xx") == 3
    # the header that imitates '"host":"paused.localhost","status":500' counted nothing
    assert value(s, "slipway_requests_total", service="paused") == 1
    assert value(s, "slipway_responses_total", service="paused", status_class="5xx") == 1
    assert value(s, "slipway_responses_total", service="down", status_class="5xx") == 1
    assert not any(dict(labels).get("service") == "nobody" for _, labels in s)
    assert metrics.lines_read == 9 and metrics.lines_unparsed == 0


def test_latency_histogram_buckets(log: Path, metrics: Metrics) -> None:
    write(log, CADDY_LINES)
    metrics.collect_requests(HOSTS)
    s = parse_prometheus(metrics.prometheus())
    bucket = "slipway_request_latency_seconds_bucket"
    hello = {le: value(s, bucket, service="hello", le=le) for le in ("0.005", "0.025", "0.05")}
    assert hello == {"0.005": 4, "0.025": 4, "0.05": 6}
    assert value(s, bucket, service="hello", le="+Inf") == 6
    assert value(s, "slipway_request_latency_seconds_count", service="hello") == 6
    assert value(s, "slipway_request_latency_seconds_sum", service="hello") == pytest.approx(
        sum(HELLO_DURATIONS)
    )
    assert value(s, bucket, service="down", le="5.0") == 0
    assert value(s, bucket, service="down", le="10.0") == 1
    # cumulative: never decreasing
    les = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    counts = [value(s, bucket, service="hello", le=repr(le)) for le in les]
    assert counts == sorted(counts)


def test_a_bound_itself_falls_in_its_bucket(log: Path, metrics: Metrics) -> None:
    write(log, [line("hello.localhost", duration=0.1)])
    metrics.collect_requests(HOSTS)
    s = parse_prometheus(metrics.prometheus())
    bucket = "slipway_request_latency_seconds_bucket"
    assert value(s, bucket, service="hello", le="0.05") == 0
    assert value(s, bucket, service="hello", le="0.1") == 1


def test_only_new_lines_and_only_whole_ones(log: Path, metrics: Metrics) -> None:
    write(log, CADDY_LINES[:3])
    assert metrics.collect_requests(HOSTS) == 3
    assert metrics.collect_requests(HOSTS) == 0
    half = len(CADDY_LINES[3]) // 2
    with log.open("a") as fh:
        fh.write(CADDY_LINES[3][:half])  # Caddy in the middle of a write
    assert metrics.collect_requests(HOSTS) == 0
    with log.open("a") as fh:
        fh.write(CADDY_LINES[3][half:] + "\n")
    assert metrics.collect_requests(HOSTS) == 1
    assert metrics.lines_unparsed == 0


def test_counting_starts_at_the_end_of_an_existing_log(log: Path) -> None:
    log.parent.mkdir()
    write(log, CADDY_LINES)
    metrics = Metrics(log, clock=lambda: NOW)
    assert metrics.collect_requests(HOSTS) == 0
    write(log, [line("hello.localhost")])
    assert metrics.collect_requests(HOSTS) == 1
    assert Metrics(log, from_start=True).collect_requests(HOSTS) == 10


def test_unknown_hosts_ignored_but_known_services_listed(log: Path, metrics: Metrics) -> None:
    write(log, [line("other.localhost"), line("hello.example.com"), line("HELLO.localhost:80")])
    assert metrics.collect_requests({"hello.localhost": "hello", "idle.localhost": "idle"}) == 3
    s = parse_prometheus(metrics.prometheus())
    assert value(s, "slipway_requests_total", service="hello") == 1
    assert value(s, "slipway_requests_total", service="idle") == 0  # a series from the start
    assert value(s, "slipway_responses_total", service="idle", status_class="5xx") == 0


def test_without_access_log_only_the_services() -> None:
    metrics = Metrics(None)
    assert metrics.collect_requests(HOSTS) == 0
    samples = parse_prometheus(metrics.prometheus())
    assert value(samples, "slipway_requests_total", service="hello") == 0


def test_missing_log_reads_nothing_then_everything(log: Path, metrics: Metrics) -> None:
    assert metrics.collect_requests(HOSTS) == 0
    write(log, CADDY_LINES[:2])
    assert metrics.collect_requests(HOSTS) == 2


def test_roll_finishes_the_old_file_then_reads_the_new(log: Path, metrics: Metrics) -> None:
    write(log, [line("hello.localhost")] * 3)
    assert metrics.collect_requests(HOSTS) == 3
    write(log, [line("hello.localhost", status=500)] * 2)  # written before the roll
    log.rename(log.parent / "access-2026-11-25T14-08-46.783.log")  # as Caddy rolls
    write(log, [line("hello.localhost", status=404)] * 4)
    assert metrics.collect_requests(HOSTS) == 6
    s = parse_prometheus(metrics.prometheus())
    assert value(s, "slipway_requests_total", service="hello") == 9
    assert value(s, "slipway_responses_total", service="hello", status_class="5xx") == 2
    assert value(s, "slipway_responses_total", service="hello", status_class="4xx") == 4
    write(log, [line("hello.localhost")])
    assert metrics.collect_requests(HOSTS) == 1


def test_roll_with_the_old_file_gone_reads_the_new_from_its_start(
    log: Path, metrics: Metrics
) -> None:
    write(log, [line("hello.localhost")] * 3)
    metrics.collect_requests(HOSTS)
    write(log, [line("hello.localhost")] * 2)
    log.unlink()  # its inode number may well be given to the next file
    write(log, [line("hello.localhost", ts=NOW + 0.25)] * 4)
    assert metrics.collect_requests(HOSTS) == 4


def test_truncated_log_read_from_its_start(log: Path, metrics: Metrics) -> None:
    write(log, [line("hello.localhost")] * 5)
    metrics.collect_requests(HOSTS)
    write(log, [line("hello.localhost")] * 2, mode="w")  # same inode, shorter
    assert metrics.collect_requests(HOSTS) == 2
    # same inode, rewritten longer than what was read: told apart by its first line
    write(log, [line("hello.localhost", ts=NOW + 1)] * 3, mode="w")
    assert metrics.collect_requests(HOSTS) == 3


def test_lines_of_another_shape_read_one_by_one(log: Path, metrics: Metrics) -> None:
    reordered = json.dumps(
        {"status": 404, "duration": 0.2, "request": {"host": "hello.localhost"}, "ts": NOW}
    )
    write(log, [line("hello.localhost"), "not json at all", reordered, line("hello.localhost")])
    assert metrics.collect_requests(HOSTS) == 4
    s = parse_prometheus(metrics.prometheus())
    assert value(s, "slipway_requests_total", service="hello") == 3
    assert value(s, "slipway_responses_total", service="hello", status_class="4xx") == 1
    assert value(s, "slipway_access_log_unparsed_lines_total") == 1
    assert value(s, "slipway_access_log_lines_total") == 4


def test_batches_larger_than_one_read(
    log: Path, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("slipway.observe.accesslog.READ_CHUNK", 1000)
    write(log, [line("hello.localhost", status=200 + i % 2 * 300) for i in range(25)])
    assert metrics.collect_requests(HOSTS) == 25
    s = parse_prometheus(metrics.prometheus())
    assert value(s, "slipway_responses_total", service="hello", status_class="2xx") == 13
    assert value(s, "slipway_responses_total", service="hello", status_class="5xx") == 12


# -- Prometheus text and per-minute rows ------------------------------------------------


def test_prometheus_text_is_well_formed(log: Path, metrics: Metrics) -> None:
    write(log, CADDY_LINES)
    metrics.collect_requests(HOSTS)
    metrics.set_active_instances({"hello": 2, "paused": 0})
    text = metrics.prometheus()
    samples = parse_prometheus(text)
    assert value(samples, "slipway_active_instances", service="hello") == 2
    assert value(samples, "slipway_active_instances", service="paused") == 0
    assert "# HELP slipway_requests_total" in text and "(App Runner: Requests)" in text
    for app_runner in ("2xxStatusResponses", "RequestLatency", "ActiveInstances"):
        assert app_runner in text
    assert "# TYPE slipway_request_latency_seconds histogram" in text


def test_label_values_escaped(log: Path, metrics: Metrics) -> None:
    odd = 'we"ird\\name\nx'
    write(log, [line("odd.localhost")])
    metrics.collect_requests({"odd.localhost": odd})
    samples = parse_prometheus(metrics.prometheus())
    assert value(samples, "slipway_requests_total", service=odd) == 1


def test_empty_metrics_still_parse(metrics: Metrics) -> None:
    assert (
        parse_prometheus(metrics.prometheus())[("slipway_access_log_lines_total", frozenset())] == 0
    )


def test_recent_rows_per_minute(log: Path) -> None:
    log.parent.mkdir()
    now = [NOW]
    metrics = Metrics(log, clock=lambda: now[0])
    write(log, CADDY_LINES + [line("hello.localhost", duration=0.3, ts=NOW - 120)])
    metrics.collect_requests(HOSTS)
    metrics.set_active_instances({"hello": 2})
    rows = metrics.recent("hello", minutes=3)
    assert [r["minute"] for r in rows] == [MINUTE - 120, MINUTE - 60, MINUTE]
    old, empty, current = rows
    assert (old["requests"], old["2xx"], old["active_instances"]) == (1, 1, None)
    assert old["p50"] == pytest.approx(0.25 + 0.25 * 0.5)
    assert empty == {
        "minute": MINUTE - 60,
        "requests": 0,
        "2xx": 0,
        "4xx": 0,
        "5xx": 0,
        "p50": None,
        "p99": None,
        "active_instances": None,
        "cpu": None,
        "memory": None,
    }
    assert (current["requests"], current["2xx"], current["4xx"], current["5xx"]) == (6, 2, 1, 3)
    assert current["active_instances"] == 2
    # four in (0, 0.005], two in (0.025, 0.05]
    assert current["p50"] == pytest.approx(0.005 * 3 / 4)
    assert current["p99"] == pytest.approx(0.025 + 0.025 * (5.94 - 4) / 2)
    assert metrics.recent("nobody", 1)[0]["requests"] == 0


def test_old_minutes_pruned(log: Path) -> None:
    log.parent.mkdir()
    now = [NOW]
    metrics = Metrics(log, clock=lambda: now[0])
    write(log, [line("hello.localhost")])
    metrics.collect_requests(HOSTS)
    now[0] += 61 * 60
    metrics.collect_requests(HOSTS)
    assert sum(r["requests"] for r in metrics.recent("hello", 60)) == 0
    samples = parse_prometheus(metrics.prometheus())
    assert value(samples, "slipway_requests_total", service="hello") == 1  # counters stay


def test_histogram_quantile() -> None:
    bounds = (0.1, 0.2, 0.5)
    assert histogram_quantile(0.5, bounds, [0, 0, 0, 0]) is None
    assert histogram_quantile(0.5, bounds, [2, 2, 0, 0]) == pytest.approx(0.1)
    assert histogram_quantile(0.75, bounds, [2, 2, 0, 0]) == pytest.approx(0.15)
    assert histogram_quantile(0.99, bounds, [1, 0, 0, 9]) == 0.5  # in +Inf: the top bound


# -- docker stats ---------------------------------------------------------------------------

# A one-shot sample from docker 20.10.24 (cgroup v1) of a busybox busy loop limited to
# 0.5 CPU and 64 MiB, trimmed; precpu_stats is empty in one-shot samples.
ONE_SHOT = {
    "read": "2026-11-25T14:10:35.755219122Z",
    "cpu_stats": {
        "cpu_usage": {"total_usage": 7269569321, "percpu_usage": [3310597952, 3958971369]},
        "system_cpu_usage": 10528150000000,
        "online_cpus": 2,
    },
    "precpu_stats": {"cpu_usage": {"total_usage": 0}},
    "memory_stats": {
        "usage": 335872,
        "stats": {"total_inactive_file": 0, "total_rss": 61440, "cache": 0},
        "limit": 67108864,
    },
}


def later(sample: dict, cpu_ns: int, system_ns: int, memory: int | None = None) -> dict:
    """The same container ``system_ns`` of host CPU time later, having used ``cpu_ns``."""
    out = json.loads(json.dumps(sample))
    out["cpu_stats"]["cpu_usage"]["total_usage"] += cpu_ns
    out["cpu_stats"]["system_cpu_usage"] += system_ns
    if memory is not None:
        out["memory_stats"]["usage"] = memory
    return out


def test_cpu_percent_of_the_limit_or_of_the_host() -> None:
    # 2 s on a 2-CPU host is 4e9 ns of system time; 0.5e9 ns used = 0.25 cores
    after = later(ONE_SHOT, 500_000_000, 4_000_000_000)
    assert cpu_percent(after["cpu_stats"], ONE_SHOT["cpu_stats"], 0.5) == pytest.approx(50.0)
    assert cpu_percent(after["cpu_stats"], ONE_SHOT["cpu_stats"]) == pytest.approx(12.5)
    assert cpu_percent(ONE_SHOT["cpu_stats"], ONE_SHOT["precpu_stats"]) is None  # one-shot
    assert cpu_percent(ONE_SHOT["cpu_stats"], None) is None
    assert cpu_percent(ONE_SHOT["cpu_stats"], after["cpu_stats"]) is None  # restarted


def test_memory_percent_leaves_out_inactive_page_cache() -> None:
    assert memory_percent(ONE_SHOT["memory_stats"]) == pytest.approx(335872 / 67108864 * 100)
    v1 = {"usage": 100, "limit": 400, "stats": {"total_inactive_file": 20}}
    v2 = {"usage": 100, "limit": 400, "stats": {"inactive_file": 20}}
    assert memory_percent(v1) == memory_percent(v2) == pytest.approx(20.0)
    assert memory_percent({"usage": 100, "limit": 400, "stats": {"inactive_file": 200}}) == 25.0
    assert memory_percent({}) is None  # a stopped container


def test_collect_resources_gauges_and_minutes(metrics: Metrics) -> None:
    metrics.collect_resources([("hello", "i1", ONE_SHOT)], cpu_limits={"i1": 0.5})
    samples = parse_prometheus(metrics.prometheus())
    cpu, mem = (
        "slipway_instance_cpu_utilization_percent",
        "slipway_instance_memory_utilization_percent",
    )
    assert (cpu, frozenset({("service", "hello"), ("instance", "i1")})) not in samples
    assert value(samples, mem, service="hello", instance="i1") == pytest.approx(0.5, abs=0.001)
    second = later(ONE_SHOT, 500_000_000, 4_000_000_000, memory=33554432)
    metrics.collect_resources([("hello", "i1", second)], cpu_limits={"i1": 0.5})
    samples = parse_prometheus(metrics.prometheus())
    assert value(samples, cpu, service="hello", instance="i1") == pytest.approx(50.0)
    assert value(samples, mem, service="hello", instance="i1") == pytest.approx(50.0)
    row = metrics.recent("hello", 1)[0]
    assert row["cpu"] == pytest.approx(50.0)
    assert row["memory"] == pytest.approx((0.5005 + 50.0) / 2, abs=0.01)
    metrics.collect_resources([])
    samples = parse_prometheus(metrics.prometheus())
    assert not any(name in (cpu, mem) for name, _ in samples)


# -- the collector ----------------------------------------------------------------------------


class FakeDockerAPI:
    """The calls the collector makes, answering from canned samples; its containers
    are not listed, so their stats come from Docker's stats API, not cgroup files."""

    api_version = "1.41"

    def containers(self, all: bool, filters: dict) -> list[dict]:
        return []

    def events(self, decode: bool, filters: dict):
        raise requests.ConnectionError("no event stream here")

    def __init__(self) -> None:
        self.samples: dict[str, dict] = {}
        self.inspected: list[str] = []
        self.one_shot: list[Any] = []

    def stats(self, container: str, stream: bool, one_shot: Any = None) -> dict:
        assert stream is False
        self.one_shot.append(one_shot)
        if container not in self.samples:
            raise docker.errors.NotFound("gone")
        return self.samples[container]

    def inspect_container(self, container: str) -> dict:
        self.inspected.append(container)
        return {"HostConfig": {"NanoCpus": 500_000_000 if container == "c1" else 0}}


class FakeDocker:
    def __init__(self) -> None:
        self.api = FakeDockerAPI()


def test_collector_counts_instances_and_reads_stats(metrics: Metrics) -> None:
    client = FakeDocker()
    client.api.samples = {"c1": ONE_SHOT, "c2": ONE_SHOT}
    pairs = [("hello", "c1"), ("hello", "c2"), ("hello", "c3")]  # c3 stopped meanwhile
    backend = DockerEngine(client)  # type: ignore[arg-type]
    collector = MetricsCollector(metrics, lambda: HOSTS, lambda: pairs, backend)
    collector.tick_resources()
    client.api.samples = {
        "c1": later(ONE_SHOT, 500_000_000, 4_000_000_000),
        "c2": later(ONE_SHOT, 500_000_000, 4_000_000_000),
    }
    collector.tick_resources()
    samples = parse_prometheus(metrics.prometheus())
    assert value(samples, "slipway_active_instances", service="hello") == 3
    assert value(samples, "slipway_active_instances", service="down") == 0
    cpu = "slipway_instance_cpu_utilization_percent"
    assert value(samples, cpu, service="hello", instance="c1") == pytest.approx(50.0)
    assert value(samples, cpu, service="hello", instance="c2") == pytest.approx(12.5)
    assert sorted(client.api.inspected) == ["c1", "c2", "c3"]  # limits looked up once
    assert set(client.api.one_shot) == {True}


def test_collector_without_docker_counts_instances_only(metrics: Metrics) -> None:
    collector = MetricsCollector(metrics, lambda: HOSTS, lambda: [("down", "x")], FakeBackend())
    collector.tick_resources()
    samples = parse_prometheus(metrics.prometheus())
    assert value(samples, "slipway_active_instances", service="down") == 1
    assert value(samples, "slipway_active_instances", service="hello") == 0


def test_collector_jobs_survive_failures(log: Path, metrics: Metrics) -> None:
    calls = {"hosts": 0}

    def hosts() -> dict[str, str]:
        calls["hosts"] += 1
        if calls["hosts"] <= 2:
            raise RuntimeError("store is busy")
        return HOSTS

    def instances() -> list[tuple[str, str]]:
        raise OSError("docker went away")

    write(log, [line("hello.localhost")] * 2)
    collector = MetricsCollector(
        metrics, hosts, instances, FakeBackend(), interval=0.01, stats_interval=0.01
    )
    jobs = Jobs()
    collector.schedule(jobs)
    jobs.start()
    try:
        deadline = time.monotonic() + 5
        while metrics.lines_read < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        jobs.stop()
    assert metrics.lines_read == 2
    assert (
        value(parse_prometheus(metrics.prometheus()), "slipway_requests_total", service="hello")
        == 2
    )


# -- HTTP -----------------------------------------------------------------------------------


def app_with(tmp: Path, metrics: Metrics, denied: bool = False) -> tuple[TestClient, list[str]]:
    seen: list[str] = []

    async def authenticate(request: Request, body: bytes) -> str:
        seen.append(request.url.path)
        if denied:
            raise UnrecognizedClient("no such key")
        return "caller"

    store = Store(tmp / "db.sqlite", Vault(tmp / "vault.key"))
    history = MetricsHistory(store, metrics, lambda: ["hello"], clock=metrics.clock)
    app = FastAPI()
    app.include_router(metrics_router(metrics, history, authenticate))
    return TestClient(app), seen


def test_metrics_endpoint_is_prometheus_text_without_auth(log: Path, metrics: Metrics) -> None:
    write(log, CADDY_LINES)
    metrics.collect_requests(HOSTS)
    client, seen = app_with(log.parent, metrics, denied=True)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert value(parse_prometheus(response.text), "slipway_requests_total", service="hello") == 6
    assert seen == []


def test_recent_endpoint_is_signed_and_in_app_runner_names(log: Path, metrics: Metrics) -> None:
    write(log, CADDY_LINES)
    metrics.collect_requests(HOSTS)
    client, seen = app_with(log.parent, metrics)
    body = client.get("/slipway/v1/metrics", params={"Service": "hello", "Minutes": 2}).json()
    assert seen == ["/slipway/v1/metrics"]
    assert body["Service"] == "hello" and body["PeriodSeconds"] == 60
    assert len(body["Rows"]) == 2
    last = body["Rows"][-1]
    assert last["Requests"] == 6 and last["5xxStatusResponses"] == 3
    assert set(last) >= {"Minute", "RequestLatencyP50", "RequestLatencyP99", "CPUUtilization"}


def test_recent_endpoint_rejects_bad_input_and_bad_callers(log: Path, metrics: Metrics) -> None:
    client, _ = app_with(log.parent, metrics)
    for params in (
        {},
        {"Service": "a", "Minutes": "x"},
        {"Service": "a", "Minutes": 0},
        {"Service": "a", "Minutes": 7 * 1440 + 1},
    ):
        with pytest.raises(InvalidRequest):
            client.get("/slipway/v1/metrics", params=params)
    denied, _ = app_with(log.parent, metrics, denied=True)
    with pytest.raises(UnrecognizedClient):
        denied.get("/slipway/v1/metrics", params={"Service": "a"})
