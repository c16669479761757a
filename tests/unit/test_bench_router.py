"""bench/router.py's pure parts: reading wrk, the Caddy variants it derives from slipway's
config, the CPU accounting and the verdict against the goal; and where its table goes
in BENCHMARKS.md (bench/common.py's ``record``, which every bench uses)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slipway.routing.caddyconfig import Route, TlsSettings, build_config

BENCH = Path(__file__).resolve().parents[2] / "bench"

WRK = """Running 10s test @ http://127.0.0.1:8080/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.65ms    1.00ms   1.02s    80.84%
    Req/Sec     1.17k   168.92     1.44k    63.64%
  Latency Distribution
     50%  812.00us
     75%    1.98ms
     90%    2.84ms
     99%    1.15s
  41283 requests in 10.00s, 2.88MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   4128.30
Transfer/sec:      2.62MB
"""


@pytest.fixture(scope="module")
def router():
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("router")
    finally:
        sys.path.remove(str(BENCH))


def test_wrk_output_is_read_in_ms_with_every_error_counted(router) -> None:
    assert router.parse_wrk(WRK) == {
        "requests": 41283,
        "rps": 4128.30,
        "p50_ms": pytest.approx(0.812),
        "p99_ms": pytest.approx(1150.0),
        "errors": 10,  # 3 + 1 + 2 socket errors and 4 bad answers
    }


def test_wrk_output_without_latency_distribution_is_refused(router) -> None:
    without = WRK.replace("     50%  812.00us\n", "")
    with pytest.raises(ValueError, match="--latency"):
        router.parse_wrk(without)


def slipway_config() -> dict:
    return build_config(
        [Route("bench.localhost", ("127.77.0.2:8080",))],
        [],
        admin_listen="127.0.0.1:2019",
        http_port=8081,
        tls=TlsSettings(),
        route_dns="127.0.0.1:5353",
        access_log=Path("/tmp/access.log"),
        access_log_roll_mb=100,
        access_log_keep=2,
    )


def test_variants_drop_only_the_access_log_then_the_route_dns(router) -> None:
    config = slipway_config()
    nolog = router.without_access_log(config)
    assert "logging" not in nolog and "logs" not in nolog["apps"]["http"]["servers"]["slipway"]
    assert "logging" in config  # the original is left as it was
    (proxy,) = nolog["apps"]["http"]["servers"]["slipway"]["routes"][0]["handle"]
    assert proxy["dynamic_upstreams"]["name"]
    static = router.without_dynamic_upstreams(nolog)
    (proxy,) = static["apps"]["http"]["servers"]["slipway"]["routes"][0]["handle"]
    assert "dynamic_upstreams" not in proxy
    assert proxy["upstreams"] == [{"dial": "127.77.0.2:8080"}]
    assert proxy["load_balancing"]["try_duration"]  # retries and health checks stay


def test_cpu_per_request_counts_processes_alive_at_both_ends(router) -> None:
    before = {1: 1.0, 2: 2.0, 3: 5.0}
    after = {1: 1.5, 2: 2.5, 4: 9.0}  # 3 went, 4 came: neither is counted
    assert router.per_request_us(before, after, 1000) == pytest.approx(1000.0)


def test_process_tree_holds_the_workers(router) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        tree = router.process_tree(os.getpid())
        assert tree[0] == os.getpid() and child.pid in tree
    finally:
        child.kill()
        child.wait()


def row(rps: float, p50: float, cpu: float | None) -> dict:
    return {"rps": rps, "p50_ms": p50, "p99_ms": p50 * 3, "errors": 0, "cpu_us": cpu}


def test_verdict_holds_slipway_against_the_router_with_least_cpu(router) -> None:
    rows = {
        "direct": row(6000, 1.0, None),
        "nginx": row(4500, 3.0, 40),
        "haproxy": row(5000, 2.8, 45),
        "caddy": row(2500, 5.0, 130),
        "slipway": row(4600, 3.2, 47),
    }
    assert router.verdict(rows).startswith("slipway's route against the best router (nginx)")
    assert router.verdict(rows).endswith("goal met.")
    rows["slipway"] = row(4600, 3.2, 49)  # 1.225x the CPU
    assert router.verdict(rows).endswith("goal not met.")


def test_haproxy_with_request_log_logs_each_request_and_opens_its_runtime_api(router) -> None:
    plain = router.haproxy_conf(Path("/tmp/x"), 8081, "127.77.0.2:8080")
    logged = router.haproxy_conf(Path("/tmp/x"), 8081, "127.77.0.2:8080", log_requests=True)
    assert "httplog" not in plain and "stats socket" not in plain
    assert "option httplog" in logged and "stats socket /tmp/x/admin.sock" in logged
    assert "server app1 127.77.0.2:8080" in logged


def test_nginx_with_lua_routes_by_host_at_run_time_and_counts_flights(router) -> None:
    conf = router.nginx_lua_conf(Path("/tmp/x"), 8081, "127.77.0.2:8080", "bench.localhost")
    assert conf.startswith("load_module /usr/lib/nginx/modules/ndk_http_module.so;\n")
    assert 'routes:set("bench.localhost", "127.77.0.2:8080")' in conf
    assert "server 127.77.0.2:8080;" not in conf  # no static upstream: the balancer picks
    assert "flights:incr(peer, 1, 0)" in conf and "flights:incr(peer, -1, 0)" in conf
    assert "keepalive 32;" in conf and "listen 127.0.0.1:8081;" in conf


def test_haproxy_version_is_read_from_its_banner(router, tmp_path) -> None:
    fake = tmp_path / "haproxy"
    fake.write_text(
        "#!/bin/sh\necho 'HAProxy version 3.0.11-9e587df 2025/06/02 - https://haproxy.org/'\n"
    )
    fake.chmod(0o755)
    assert router.haproxy_version(str(fake)) == "3.0.11"


@pytest.fixture(scope="module")
def common(router):
    return sys.modules["common"]  # imported by router.py


def test_a_table_goes_to_the_end_of_its_section_not_of_the_file(common, tmp_path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## bench/a.py\n\nold a\n\n## bench/b.py\n\nold b\n")
    common.record("bench/a.py", "new a", path=path)
    assert path.read_text() == (
        "# Benchmarks\n\n## bench/a.py\n\nold a\n\nnew a\n\n## bench/b.py\n\nold b\n"
    )
    common.record("bench/b.py", "new b", path=path)
    assert path.read_text().endswith("## bench/b.py\n\nold b\n\nnew b\n")


def test_a_new_section_opens_at_the_end_with_its_intro(common, tmp_path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## bench/a.py\n\nold a\n")
    common.record("bench/c.py", "table c", "What c measures.", path=path)
    assert path.read_text() == (
        "# Benchmarks\n\n## bench/a.py\n\nold a\n\n## bench/c.py\n\nWhat c measures.\n\ntable c\n"
    )
