"""What each router costs per request: direct, nginx, HAProxy, bare Caddy and slipway's
route, side by side in one run, on the same upstream and the same load.

Usage: .venv/bin/python bench/router.py [--seconds 10] [--rounds 3] [--connections 16]
       [--haproxy-bin PATH] [--record]

The upstream is one instance of ``examples/hello`` that a real agent (``local_stack``)
runs as an image service; every router proxies to that instance's published loopback
address, so the app's own cost is the same in every row and only the router differs.
The load is wrk (``--latency``, bounded by ``--seconds``) on loopback. Rows:

- direct: wrk to the instance's published port, no router.
- nginx, haproxy, caddy: each a minimal reverse proxy of the bench's own (a temp
  config, started and stopped here, no access log), keep-alive to the upstream.
- haproxy + request log: HAProxy with a log line per request and the Runtime API
  socket (what slipway would add to it unsampled).
- nginx + Lua routing: nginx with the least a route needs that nginx cannot do without
  a reload, done in Lua (Debian's ``libnginx-mod-http-lua``): the upstream picked by
  Host from a shared table at run time, in-flight counts per instance, 1-in-10 latency
  samples. Not held against the goal: it is the price of the other data plane slipway
  could have chosen. Left out, saying so, where the module is not installed.
- haproxy VERSION: with ``--haproxy-bin``, the bare HAProxy row again with another
  build (one made from a newer release's source), to see what a newer HAProxy saves.
- caddy, slipway config...: Caddy loaded with the config the agent generates for the
  route under ``data_plane: caddy``, less its access log, and also less its dynamic
  upstreams (the route DNS responder): where that route's cost over bare Caddy comes from.
- slipway, data_plane caddy: that config whole, its access log read by the agent.
- slipway: the agent's data plane (``data_plane: haproxy``), through the route exactly
  as users reach it: the agent's own HAProxy with its real config (Host map, Runtime
  API socket, the instance added as a server at runtime, 1-in-``haproxy_latency_sample``
  latencies sent to the agent, whose counters it reads for the metrics).

CPU per request is utime + stime from /proc of all processes of that router (nginx's
master and workers; Caddy with the route DNS responder; HAProxy; the agent's own CPU,
which reads the access log or HAProxy's counters and samples, in its own column) over
the measured window, divided by wrk's requests. Each row runs ``--rounds`` times, the
order rotated each round; the table shows medians. Goal (issue 15): slipway's route at
most 1.2x the CPU per request of the best router, at least 0.9x its req/s, p50 within
1.1x. --record appends to BENCHMARKS.md.
The bench installs nothing: it names the Debian packages that are missing.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
from common import cpu_seconds, example_service, local_stack, record

from slipway.backends import LABEL_SERVICE_NAME
from testkit.harness import (
    CaddyProcess,
    _route_dns_pids,
    free_port,
    haproxy_pids,
    stop_process,
    wait_until_answers,
)

# The Debian package of each program the bench runs.
PACKAGES = {"wrk": "wrk", "nginx": "nginx", "haproxy": "haproxy", "caddy": "caddy"}
NGINX_MODULES = Path("/usr/lib/nginx/modules")
LUA_MODULES = ("ndk_http_module.so", "ngx_http_lua_module.so")  # in this order
LUA_PACKAGE = "libnginx-mod-http-lua"
ROUTERS = ("nginx", "haproxy", "caddy")  # the ones slipway's route is held against
WARMUP_SECONDS = 1
GOAL = {"cpu": 1.2, "rps": 0.9, "p50": 1.1}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


@dataclass(frozen=True)
class Target:
    """One row: where wrk sends its load, with which Host, and whose CPU is the router's."""

    name: str
    url: str
    host: str | None
    router_pids: Callable[[], list[int]] = lambda: []
    agent_pids: Callable[[], list[int]] = lambda: []


@dataclass(frozen=True)
class Sample:
    """One wrk run at one target."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float | None  # router CPU per request; None without a router
    agent_us: float | None


def missing_packages() -> list[str]:
    """The Debian packages whose program this bench needs and cannot find."""
    return sorted({pkg for program, pkg in PACKAGES.items() if shutil.which(program) is None})


def parse_wrk(text: str) -> dict[str, float]:
    """requests, req/s, p50 and p99 (ms) and errors (non-2xx/3xx answers and socket
    errors) from the output of ``wrk --latency``."""
    quantiles: dict[str, float] = {}
    for q, value, unit in re.findall(r"^\s+(50|99)(?:\.0+)?%\s+" + _DURATION, text, re.M):
        quantiles[q] = float(value) * _UNITS[unit]
    requests = re.search(r"^\s*(\d+) requests in", text, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if requests is None or rps is None or set(quantiles) != {"50", "99"}:
        raise ValueError(f"wrk's output is not what --latency prints:\n{text}")
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    for line in re.findall(r"^\s*Socket errors: (.*)$", text, re.M):
        errors += sum(int(n) for n in re.findall(r"\d+", line))
    return {
        "requests": float(requests.group(1)),
        "rps": float(rps.group(1)),
        "p50_ms": quantiles["50"],
        "p99_ms": quantiles["99"],
        "errors": float(errors),
    }


def wrk(target: Target, seconds: float, connections: int, threads: int) -> dict[str, float]:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if target.host:
        command += ["-H", f"Host: {target.host}"]
    done = subprocess.run(
        [*command, target.url], capture_output=True, text=True, timeout=seconds + 30, check=True
    )
    return parse_wrk(done.stdout)


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (a router's master and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_of(pids: list[int]) -> dict[int, float]:
    """CPU seconds so far of each of ``pids`` still alive."""
    spent = {}
    for pid in pids:
        try:
            spent[pid] = cpu_seconds(pid)
        except OSError:
            continue
    return spent


def per_request_us(before: dict[int, float], after: dict[int, float], requests: float) -> float:
    """µs of CPU per request of the processes alive at both ends of the window."""
    seconds = sum(after[pid] - before[pid] for pid in before.keys() & after.keys())
    return seconds * 1e6 / requests


def measure(target: Target, seconds: float, connections: int, threads: int) -> Sample:
    wrk(target, WARMUP_SECONDS, connections, threads)  # connections opened, caches warm
    router, agent = target.router_pids(), target.agent_pids()
    router_before, agent_before = cpu_of(router), cpu_of(agent)
    result = wrk(target, seconds, connections, threads)
    requests = result["requests"]
    return Sample(
        rps=result["rps"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        errors=int(result["errors"]),
        cpu_us=per_request_us(router_before, cpu_of(router), requests) if router else None,
        agent_us=per_request_us(agent_before, cpu_of(agent), requests) if agent else None,
    )


@contextmanager
def program(
    argv: list[str], log: Path, url: str, what: str, host: str | None = None
) -> Iterator[int]:
    """``argv`` running in the foreground until the block ends; yields its pid once
    ``url`` answers (asked for ``host`` when given)."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    headers = {"Host": host} if host else {}
    try:
        wait_until_answers(
            url, what, process, log, get=lambda: httpx.get(url, headers=headers, timeout=1)
        )
        yield process.pid
    finally:
        stop_process(process)


def nginx_conf(tmp: Path, port: int, upstream: str) -> str:
    temp = "".join(
        f"{kind}_temp_path {tmp / kind};\n" for kind in ("client_body", "proxy", "fastcgi")
    ) + "".join(f"{kind}_temp_path {tmp / kind};\n" for kind in ("uwsgi", "scgi"))
    return f"""daemon off;
master_process on;
worker_processes auto;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  {temp}
  upstream app {{ server {upstream}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}
}}
"""


def nginx_lua_conf(tmp: Path, port: int, upstream: str, host: str) -> str:
    """``nginx_conf`` whose upstream Lua picks by Host from a table it could change at
    run time, counting requests in flight per instance and keeping one latency in ten:
    what slipway's route does per request, the nginx way."""
    modules = "".join(f"load_module {NGINX_MODULES / name};\n" for name in LUA_MODULES)
    balancer = """
    server 0.0.0.1;  # never used: the balancer sets the peer
    balancer_by_lua_block {
      local peer = ngx.shared.routes:get(ngx.var.host)
      local ip, port = peer:match("^(.+):(%d+)$")
      ngx.ctx.peer = peer
      ngx.shared.flights:incr(peer, 1, 0)
      require("ngx.balancer").set_current_peer(ip, tonumber(port))
    }
   """
    log = """
      log_by_lua_block {
        local peer = ngx.ctx.peer
        if peer then ngx.shared.flights:incr(peer, -1, 0) end
        if math.random(10) == 1 then
          ngx.shared.flights:set("latency", ngx.var.upstream_response_time)
        end
      }"""
    conf = nginx_conf(tmp, port, upstream)
    conf = conf.replace(f"server {upstream};", balancer)
    conf = conf.replace("proxy_set_header Host $host;", f"proxy_set_header Host $host;{log}")
    tables = (
        "lua_shared_dict routes 1m;\n  lua_shared_dict flights 1m;\n"
        f'  init_by_lua_block {{ ngx.shared.routes:set("{host}", "{upstream}") }}\n'
    )
    return modules + conf.replace("http {\n", f"http {{\n  {tables}", 1)


def haproxy_conf(tmp: Path, port: int, upstream: str, *, log_requests: bool = False) -> str:
    """A minimal reverse proxy; with ``log_requests`` also what slipway would add: a log
    line per request (its metrics' source, here written to HAProxy's stdout) and the
    Runtime API socket."""
    if log_requests:
        logging = f"  log stdout format raw local0 info\n  stats socket {tmp / 'admin.sock'}"
        defaults = "  log global\n  option httplog\n"
    else:
        logging, defaults = "  log stderr format raw local0 err", ""
    return f"""global
{logging}
defaults
{defaults}  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend bench
  bind 127.0.0.1:{port}
  default_backend app
backend app
  server app1 {upstream}
"""


@contextmanager
def nginx(tmp: Path, upstream: str, lua_host: str | None = None) -> Iterator[Target]:
    """The nginx row; with ``lua_host``, the nginx + Lua routing row, which routes that
    host only (``nginx_lua_conf``)."""
    port = free_port()
    conf = tmp / "nginx.conf"
    if lua_host:
        conf.write_text(nginx_lua_conf(tmp, port, upstream, lua_host))
        name, host = "nginx + Lua routing", f"{lua_host}:{port}"
    else:
        conf.write_text(nginx_conf(tmp, port, upstream))
        name, host = "nginx", None
    argv = ["nginx", "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]
    url = f"http://127.0.0.1:{port}/"
    with program(argv, tmp / "nginx.log", url, name, host) as pid:
        yield Target(name, url, host, lambda: process_tree(pid))


def has_lua() -> bool:
    return all((NGINX_MODULES / name).exists() for name in LUA_MODULES)


def haproxy_version(binary: str) -> str:
    """``2.6.12`` from ``HAProxy version 2.6.12-1+deb12u4 2025/... - https://...``."""
    first = subprocess.run([binary, "-v"], capture_output=True, text=True, check=True).stdout
    return first.split()[2].split("-")[0]


@contextmanager
def haproxy(
    tmp: Path, upstream: str, name: str = "haproxy", binary: str = "haproxy", **options: bool
) -> Iterator[Target]:
    port = free_port()
    conf = tmp / "haproxy.cfg"
    conf.write_text(haproxy_conf(tmp, port, upstream, **options))
    url = f"http://127.0.0.1:{port}/"
    argv = [binary, "-db", "-f", str(conf)]
    with program(argv, tmp / "haproxy.log", url, "haproxy") as pid:
        yield Target(name, url, None, lambda: process_tree(pid))


@contextmanager
def caddy(tmp: Path, name: str, config: dict[str, Any], host: str | None) -> Iterator[Target]:
    """A Caddy of the bench's own (``CaddyProcess``) loaded with ``config``'s apps and
    logging, its servers moved to one port of its own."""
    process = CaddyProcess(tmp)
    process.start()
    try:
        config = copy.deepcopy(config)
        config["admin"] = {"listen": process.admin_listen}
        for server in config["apps"]["http"]["servers"].values():
            server["listen"] = [f"127.0.0.1:{process.http_port}"]
        httpx.post(f"{process.admin_url}/load", json=config, timeout=10).raise_for_status()
        assert process.process is not None
        pid = process.process.pid
        url = f"http://127.0.0.1:{process.http_port}/"
        yield Target(name, url, host and f"{host}:{process.http_port}", lambda: process_tree(pid))
    finally:
        process.stop()


def with_pids(
    target: Target, more: Callable[[], list[int]], agent: Callable[[], list[int]]
) -> Target:
    """``target`` with ``more`` processes counted as its router's and ``agent``'s CPU in
    the agent column (a Caddy of the bench's that uses the agent's route DNS responder
    and writes the access log the agent reads)."""
    router = target.router_pids
    return Target(target.name, target.url, target.host, lambda: router() + more(), agent)


def agent_alone(agent: int, *children: int) -> list[int]:
    """The agent's processes less the routers it started (HAProxy, the route DNS
    responder: its children, counted in the router column)."""
    routers = {pid for child in children for pid in process_tree(child)}
    routers |= {pid for pid in process_tree(agent) if _is_route_dns(pid)}
    return [pid for pid in process_tree(agent) if pid not in routers]


def _is_route_dns(pid: int) -> bool:
    try:
        return b"slipway.routing.routedns" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def bare_caddy_config(upstream: str) -> dict[str, Any]:
    """``reverse_proxy`` to one static upstream, nothing else."""
    proxy = {"handler": "reverse_proxy", "upstreams": [{"dial": upstream}]}
    server = {"automatic_https": {"disable": True}, "routes": [{"handle": [proxy]}]}
    return {"apps": {"http": {"servers": {"bench": server}}}}


def without_access_log(config: dict[str, Any]) -> dict[str, Any]:
    """slipway's config without the access log (its servers' logs and the logger)."""
    config = copy.deepcopy({key: value for key, value in config.items() if key != "logging"})
    for server in config["apps"]["http"]["servers"].values():
        server.pop("logs", None)
    return config


def without_dynamic_upstreams(config: Any) -> Any:
    """``config`` with every proxy on its static upstreams only (no route DNS lookups)."""
    if isinstance(config, list):
        return [without_dynamic_upstreams(item) for item in config]
    if not isinstance(config, dict):
        return config
    return {k: without_dynamic_upstreams(v) for k, v in config.items() if k != "dynamic_upstreams"}


def run(args: argparse.Namespace) -> tuple[dict[str, list[Sample]], float]:
    """The samples of every row, and the agent's CPU a second while nothing is sent
    (its jobs: reconcile, metrics, scaling), which its column includes."""
    client = docker.from_env()
    samples: dict[str, list[Sample]] = {}
    with (
        local_stack(data_plane="haproxy") as (registry, stack_caddy, agent),
        example_service(client, registry, agent, "bench", "bench/hello"),
        ExitStack() as routers,
        tempfile.TemporaryDirectory() as tmp,
    ):
        (container,) = client.containers.list(filters={"label": f"{LABEL_SERVICE_NAME}=bench"})
        published = container.ports["8080/tcp"][0]  # the instance's own loopback address
        upstream = f"{published['HostIp']}:{published['HostPort']}"
        host = "bench.localhost"
        slipway_config = stack_caddy.admin_get("/config/").json()
        table = Path(agent.env["SLIPWAY_DATA_DIR"]) / "routes.json"
        assert agent.proc is not None
        agent_pid = agent.proc.pid
        (haproxy_pid,) = haproxy_pids(agent.root)

        def agent_pids() -> list[int]:
            return agent_alone(agent_pid, haproxy_pid)

        nolog = without_access_log(slipway_config)
        dirs = [Path(tmp) / str(i) for i in range(9)]
        for each in dirs:
            each.mkdir()
        targets = [
            # The agent's column here is what the app's own log line per request costs
            # it (it follows every instance's output): in every row, routed or not.
            Target("direct", f"http://{upstream}/", None, agent_pids=agent_pids),
            routers.enter_context(nginx(dirs[0], upstream)),
            routers.enter_context(haproxy(dirs[1], upstream)),
            routers.enter_context(
                haproxy(dirs[5], upstream, "haproxy + request log", log_requests=True)
            ),
            routers.enter_context(caddy(dirs[2], "caddy", bare_caddy_config(upstream), None)),
            routers.enter_context(
                caddy(
                    dirs[3],
                    "caddy, slipway config - access log - route DNS",
                    without_dynamic_upstreams(nolog),
                    host,
                )
            ),
            routers.enter_context(
                caddy(dirs[4], "caddy, slipway config - access log", nolog, host)
            ),
            with_pids(
                routers.enter_context(
                    caddy(dirs[6], "slipway, data_plane caddy", slipway_config, host)
                ),
                lambda: _route_dns_pids(table),
                agent_pids,
            ),
            Target(
                "slipway",
                f"http://127.0.0.1:{agent.http_port}/",
                f"{host}:{agent.http_port}",
                lambda: process_tree(haproxy_pid),
                agent_pids,
            ),
        ]
        if args.haproxy_bin:
            name = f"haproxy {haproxy_version(args.haproxy_bin)}"
            other = haproxy(dirs[8], upstream, name, args.haproxy_bin)
            targets.insert(3, routers.enter_context(other))
        if has_lua():
            targets.insert(3, routers.enter_context(nginx(dirs[7], upstream, host)))
        else:
            print(f"nginx + Lua routing left out: apt-get install {LUA_PACKAGE}", flush=True)
        for target in targets:  # each reaches the app before anything is measured
            headers = {"Host": target.host} if target.host else {}
            answer = httpx.get(target.url, headers=headers, timeout=10)
            if answer.status_code != 200 or "Hello from slipway" not in answer.text:
                raise RuntimeError(f"{target.name} does not reach the app: {answer.status_code}")
        before = cpu_of(agent_pids())
        time.sleep(args.seconds)
        idle = sum(cpu_of(agent_pids()).get(p, v) - v for p, v in before.items()) / args.seconds
        for round_ in range(args.rounds):
            order = targets[round_ % len(targets) :] + targets[: round_ % len(targets)]
            for target in order:
                sample = measure(target, args.seconds, args.connections, args.threads)
                samples.setdefault(target.name, []).append(sample)
                print(f"round {round_ + 1} {target.name}: {sample}", flush=True)
        instances = client.containers.list(filters={"label": f"{LABEL_SERVICE_NAME}=bench"})
        if len(instances) != 1:
            raise RuntimeError(f"the service scaled to {len(instances)} instances mid-run")
    return samples, idle


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def medians(samples: dict[str, list[Sample]]) -> dict[str, dict[str, float | None]]:
    fields = ("rps", "p50_ms", "p99_ms", "errors", "cpu_us", "agent_us")
    return {
        name: {field: median([getattr(s, field) for s in runs]) for field in fields}
        for name, runs in samples.items()
    }


def verdict(rows: dict[str, dict[str, float | None]]) -> str:
    """slipway's route against the router with the least CPU per request."""
    best = min(ROUTERS, key=lambda name: rows[name]["cpu_us"] or float("inf"))
    ours, theirs = rows["slipway"], rows[best]
    cpu = (ours["cpu_us"] or 0) / (theirs["cpu_us"] or 1)
    rps = (ours["rps"] or 0) / (theirs["rps"] or 1)
    p50 = (ours["p50_ms"] or 0) / (theirs["p50_ms"] or 1)
    met = cpu <= GOAL["cpu"] and rps >= GOAL["rps"] and p50 <= GOAL["p50"]
    return (
        f"slipway's route against the best router ({best}): CPU per request {cpu:.2f}x"
        f" (goal at most {GOAL['cpu']}x), req/s {rps:.2f}x (at least {GOAL['rps']}x),"
        f" p50 {p50:.2f}x (within {GOAL['p50']}x): goal {'met' if met else 'not met'}."
    )


def render(
    rows: dict[str, dict[str, float | None]], args: argparse.Namespace, load: tuple[float, float]
) -> str:
    def number(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    direct = rows["direct"]
    lines = [
        f"### Routers, {time.strftime('%Y-%m-%d')}: wrk {args.connections} connections,"
        f" {args.threads} threads, {args.seconds:g} s per run, median of {args.rounds};"
        f" {os.cpu_count()} cores, load average {load[0]:.1f} before, {load[1]:.1f} after",
        "",
        "| path | req/s | p50 ms | p99 ms | errors | router CPU µs/req | agent CPU µs/req"
        " | req/s vs direct | p50 vs direct |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {number(r['rps'], 0)} | {number(r['p50_ms'], 2)} |"
            f" {number(r['p99_ms'], 2)} | {number(r['errors'], 0)} | {number(r['cpu_us'], 0)} |"
            f" {number(r['agent_us'], 0)} | {(r['rps'] or 0) / (direct['rps'] or 1):.2f}x |"
            f" {(r['p50_ms'] or 0) / (direct['p50_ms'] or 1):.2f}x |"
        )
    return "\n".join([*lines, "", verdict(rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="each measured wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each row; medians shown")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--haproxy-bin", help="another HAProxy build: its bare row beside Debian's")
    parser.add_argument("--record", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    if args.seconds <= 0 or args.rounds < 1 or args.threads < 1:
        parser.error("--seconds must be positive, --rounds and --threads at least 1")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads (wrk's rule)")
    if args.haproxy_bin and not os.access(args.haproxy_bin, os.X_OK):
        parser.error(f"--haproxy-bin {args.haproxy_bin} is not a program this user can run")
    missing = missing_packages()
    if missing:
        raise SystemExit(
            f"bench/router.py needs Debian packages that are not installed: {' '.join(missing)}"
            f" (apt-get install {' '.join(missing)}, or scripts/setup-host)"
        )
    load_before = os.getloadavg()[0]
    samples, idle = run(args)
    rows = medians(samples)
    table = render(rows, args, (load_before, os.getloadavg()[0]))
    ours = rows["slipway"]
    table += (
        f"\nThe agent idle (no request sent) spends {idle * 1e6:.0f} µs of CPU a second: at"
        f" the slipway row's req/s, {idle * 1e6 / (ours['rps'] or 1):.1f} of its"
        f" {ours['agent_us'] or 0:.1f} agent µs/req."
    )
    print(table)
    if args.record:
        record(
            "bench/router.py",
            table,
            "The same upstream (one instance of `examples/hello` run by an agent; every"
            " router proxies to its published loopback address) under the same load (wrk,"
            " keep-alive, loopback), through each router. Router CPU: utime + stime of all"
            " its processes from /proc over the measured window, per request (Caddy with"
            " the route DNS responder; HAProxy; the agent, which reads the access log or"
            " HAProxy's counters and samples, in its own column). slipway: the route as"
            " users reach it through the agent's data plane (the Caddy route until"
            " 2026-12-05, the HAProxy route since). Goal (issue 15): slipway's route at"
            " most 1.2x the CPU per request of the best router, at least 0.9x its req/s,"
            " p50 within 1.1x.",
        )


if __name__ == "__main__":
    main()
