"""Service metrics as App Runner names them, from what the host records anyway.

| App Runner                   | Prometheus (``/metrics``)                                |
| ---------------------------- | -------------------------------------------------------- |
| Requests                     | ``slipway_requests_total{service}``                      |
| 2xx/4xx/5xxStatusResponses   | ``slipway_responses_total{service,status_class}``        |
| RequestLatency               | ``slipway_request_latency_seconds{service}`` (histogram) |
| ActiveInstances              | ``slipway_active_instances{service}``                    |
| CPUUtilization (instance)    | ``slipway_instance_cpu_utilization_percent{service,instance}``    |
| MemoryUtilization (instance) | ``slipway_instance_memory_utilization_percent{service,instance}`` |
| (none: slipway's own)        | ``slipway_instance_restarts{service,instance}``          |

Request figures come from Caddy's JSON access log (``routing/caddyconfig.py`` sets it
up), and with HAProxy as the data plane also from HAProxy's counters and sampled
latencies (``routing/haproxytraffic.py``, through ``count_served``). The log is read
by byte offset, in batches (``accesslog.py``), and one regex over a whole batch takes
the four fields we need from every line: 2 ms of CPU per 1,000 lines against 5 for
``json.loads`` per line; with the counting, 3 ms, 0.3% of a core at 1,000 req/s
(``bench/metrics_overhead.py``).
Counters count from the agent's start, as Prometheus counters do; the access log is a
file of Caddy's, not state of ours.

CPU and memory come from the backend's stats (Docker's stats endpoint), one sample per
instance per interval; CPU is the delta between our own successive samples, so one-shot
samples do. The jobs that feed both are in ``sampling.py``.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .accesslog import AccessLogTail
from .figures import Figures, summarize

log = logging.getLogger("slipway.metrics")

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
KEEP_MINUTES = 60  # per-minute rows kept for ``recent``
PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes

# ts, request.host, duration and status of one Caddy access-log line (2.6; the string
# fields later versions add before host, such as client_ip, are skipped). Quotes inside
# JSON strings are escaped and header values are lists, so neither a header nor the URI
# can fake '"host":"' or '"duration":<number>,"size":<number>,"status":<number>'.
_ACCESS_LINE = re.compile(
    rb'"ts":([0-9.eE+-]+),(?:"[a-z_]+":"[^"\n]*",)*"request":\{(?:"[a-z_]+":"[^"\n]*",)*'
    rb'"host":"([^"\n]*)"[^\n]*"duration":([0-9.eE+-]+),"size":[0-9]+,"status":([0-9]+)'
)
_UNSEEN = object()


def normalize_host(host: str) -> str:
    """``Hello.LOCALHOST:8080`` -> ``hello.localhost``, the form the hosts map uses."""
    host = host.lower()
    if host.startswith("["):  # [::1]:8080
        return host[: host.find("]") + 1]
    return host.partition(":")[0].rstrip(".")


def _parse_json_line(raw: bytes) -> tuple[float, str, float, int] | None:
    """The slow path, for a line the regex does not take (a format Caddy changed)."""
    try:
        item = json.loads(raw)
        return (
            float(item["ts"]),
            str(item["request"]["host"]),
            float(item["duration"]),
            int(item["status"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


def cpu_percent(
    sample: Mapping[str, Any], previous: Mapping[str, Any] | None, cpu_limit: float | None = None
) -> float | None:
    """CPU used between two docker ``cpu_stats`` samples, in % of what the container may
    use: its limit in cores when it has one, else all the host's CPUs. (``docker stats``
    shows % of one core instead.) None without a usable earlier sample."""
    if not previous:
        return None
    try:
        used = sample["cpu_usage"]["total_usage"] - previous["cpu_usage"]["total_usage"]
        system = sample["system_cpu_usage"] - previous["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    if used < 0 or system <= 0:  # restarted container, or the same sample twice
        return None
    online = sample.get("online_cpus") or len(sample["cpu_usage"].get("percpu_usage") or ()) or 1
    cores = used / system * online
    return 100.0 * cores / (cpu_limit or online)


def memory_percent(memory: Mapping[str, Any]) -> float | None:
    """Memory in use, page cache that can be dropped left out (as ``docker stats`` does),
    in % of the container's limit (the host's memory when it has none)."""
    usage, limit = memory.get("usage"), memory.get("limit")
    if not usage or not limit:
        return None
    stats = memory.get("stats") or {}
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))  # cgroup v1, v2
    if inactive < usage:
        usage -= inactive
    return 100.0 * usage / limit


class _Tally:
    """Request figures of one service over a span: since start, or one minute."""

    __slots__ = ("requests", "classes", "buckets", "latency_sum")

    def __init__(self, buckets: int) -> None:
        self.requests = 0
        self.classes: Counter[str] = Counter()
        self.buckets = [0] * (buckets + 1)  # per bucket, last one +Inf
        self.latency_sum = 0.0


class _Minute(_Tally):
    __slots__ = ("active", "cpu", "memory")

    def __init__(self, buckets: int) -> None:
        super().__init__(buckets)
        self.active: int | None = None
        self.cpu: list[float] = []  # one value per instance per sample
        self.memory: list[float] = []

    def figures(self) -> Figures:
        return {
            "requests": self.requests,
            "2xx": self.classes["2xx"],
            "4xx": self.classes["4xx"],
            "5xx": self.classes["5xx"],
            "buckets": list(self.buckets),
            "latency_sum": self.latency_sum,
            "active": self.active,
            "cpu_sum": sum(self.cpu),
            "cpu_n": len(self.cpu),
            "memory_sum": sum(self.memory),
            "memory_n": len(self.memory),
        }


class Metrics(Collector):
    """Counters, histograms and gauges per service; fed by a collector, read by the API.
    It is the one collector of its own Prometheus registry, so ``/metrics`` shows only
    these figures (not the process metrics of prometheus_client's global registry)."""

    def __init__(
        self,
        access_log: Path | None,
        *,
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
        clock: Callable[[], float] = time.time,
        from_start: bool = False,
    ) -> None:
        """``access_log`` None: no request figures (Caddy logs nothing). ``from_start``
        counts the lines already in the log; by default counting starts at its end, so a
        restarted agent does not count old requests again."""
        self.buckets = tuple(float(b) for b in buckets)
        self.clock = clock
        self._lock = threading.Lock()  # the figures
        self._reading = threading.Lock()  # the file position
        self._tail = (
            None if access_log is None else AccessLogTail(access_log, from_start=from_start)
        )
        self._totals: dict[str, _Tally] = {}
        self._minutes: dict[str, dict[int, _Minute]] = {}
        self._active: dict[str, int] = {}
        self._cpu: dict[tuple[str, str], float] = {}
        self._memory: dict[tuple[str, str], float] = {}
        self._restarts: dict[tuple[str, str], int] = {}
        self._previous_cpu: dict[str, Mapping[str, Any]] = {}
        self.lines_read = 0
        self.lines_unparsed = 0
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    # -- requests ---------------------------------------------------------------

    def collect_requests(self, hosts: Mapping[str, str]) -> int:
        """Count the access-log lines written since the last call; ``hosts`` maps
        ``name.localhost`` (no port) to a service name, other hosts are ignored.
        Returns the lines read."""
        wanted = {host.lower(): name for host, name in hosts.items()}
        counts: Counter[tuple[str, int, int, int]] = Counter()
        sums: Counter[tuple[str, int]] = Counter()
        memo: dict[Any, str | None] = {}
        lines = unparsed = 0
        with self._reading:
            for batch in self._tail.batches() if self._tail is not None else ():
                n, bad = self._tally(batch, wanted, memo, counts, sums)
                lines, unparsed = lines + n, unparsed + bad
        with self._lock:
            for name in wanted.values():
                self._tally_for(name)
            for (name, minute, status_class, bucket), n in counts.items():
                for tally in (self._tally_for(name), self._minute(name, minute)):
                    tally.requests += n
                    if 1 <= status_class <= 5:
                        tally.classes[f"{status_class}xx"] += n
                    tally.buckets[bucket] += n
            for (name, minute), total in sums.items():
                self._totals[name].latency_sum += total
                self._minutes[name][minute].latency_sum += total
            self._prune()
            self.lines_read += lines
            self.lines_unparsed += unparsed
        if unparsed:
            log.warning("metrics: %d access-log lines not understood", unparsed)
        return lines

    def count_served(self, hosts: Mapping[str, str], served: Mapping[str, Any]) -> None:
        """Add what a router counted itself (HAProxy: ``routing.haproxytraffic.Served``
        per host: exact requests and status classes, sampled latencies each standing
        for ``weight`` requests); ``hosts`` as in ``collect_requests``."""
        minute = int(self.clock()) // 60
        with self._lock:
            for host, figures in served.items():
                name = hosts.get(normalize_host(host))
                if name is None:
                    continue
                for tally in (self._tally_for(name), self._minute(name, minute)):
                    tally.requests += figures.requests
                    tally.classes.update(figures.classes)
                    for seconds in figures.latencies:
                        tally.buckets[bisect_left(self.buckets, seconds)] += figures.weight
                        tally.latency_sum += seconds * figures.weight
            self._prune()

    def requests_total(self) -> dict[str, int]:
        """Requests counted per service since the agent started (scale to zero reads
        whether they moved)."""
        with self._lock:
            return {name: tally.requests for name, tally in self._totals.items()}

    def _tally(
        self,
        batch: bytes,
        hosts: Mapping[str, str],
        memo: dict[Any, str | None],
        counts: Counter[tuple[str, int, int, int]],
        sums: Counter[tuple[str, int]],
    ) -> tuple[int, int]:
        lines = batch.count(b"\n")
        found: list[Any] = _ACCESS_LINE.findall(batch)
        if len(found) != lines:  # some line is not in the expected shape: one by one
            found = []
            for raw in batch.splitlines():
                match = _ACCESS_LINE.search(raw)
                parsed = match.groups() if match else _parse_json_line(raw)
                if parsed is not None:
                    found.append(parsed)
        buckets = self.buckets
        for ts, host, duration, status in found:
            name = memo.get(host, _UNSEEN)
            if name is _UNSEEN:
                text = host.decode("utf-8", "replace") if isinstance(host, bytes) else host
                name = memo[host] = hosts.get(normalize_host(text))
            if name is None:
                continue
            seconds = float(duration)
            minute = int(float(ts)) // 60
            counts[(name, minute, int(status) // 100, bisect_left(buckets, seconds))] += 1
            sums[(name, minute)] += seconds
        return lines, lines - len(found)

    def _tally_for(self, name: str) -> _Tally:
        tally = self._totals.get(name)
        if tally is None:
            tally = self._totals[name] = _Tally(len(self.buckets))
        return tally

    def _minute(self, name: str, minute: int) -> _Minute:
        minutes = self._minutes.setdefault(name, {})
        row = minutes.get(minute)
        if row is None:
            row = minutes[minute] = _Minute(len(self.buckets))
        return row

    def _prune(self) -> None:
        oldest = int(self.clock()) // 60 - KEEP_MINUTES
        for minutes in self._minutes.values():
            for minute in [m for m in minutes if m < oldest]:
                del minutes[minute]

    # -- instances ----------------------------------------------------------------

    def set_active_instances(self, counts: Mapping[str, int]) -> None:
        """Instances serving each service now; a service left out has no gauge."""
        minute = int(self.clock()) // 60
        with self._lock:
            self._active = dict(counts)
            for name, count in counts.items():
                self._minute(name, minute).active = count

    def set_restarts(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Times the engine restarted each (service, instance) live now: a crash that the
        restart policy hides from the other figures; one left out loses its gauge."""
        with self._lock:
            self._restarts = dict(counts)

    def collect_resources(
        self,
        instances: Iterable[tuple[str, str, Mapping[str, Any]]],
        *,
        cpu_limits: Mapping[str, float | None] | None = None,
    ) -> None:
        """Set CPU and memory gauges from (service, instance, docker stats) triples; an
        instance left out loses its gauges. CPU needs the instance's previous sample (or
        the sample's own ``precpu_stats``), so a new instance shows it from its second."""
        limits = cpu_limits or {}
        minute = int(self.clock()) // 60
        with self._lock:
            cpu: dict[tuple[str, str], float] = {}
            memory: dict[tuple[str, str], float] = {}
            previous: dict[str, Mapping[str, Any]] = {}
            for name, instance, stats in instances:
                sample = stats.get("cpu_stats") or {}
                before = self._previous_cpu.get(instance) or stats.get("precpu_stats")
                used = cpu_percent(sample, before, limits.get(instance))
                previous[instance] = sample
                mem = memory_percent(stats.get("memory_stats") or {})
                row = self._minute(name, minute)
                if used is not None:
                    cpu[(name, instance)] = used
                    row.cpu.append(used)
                if mem is not None:
                    memory[(name, instance)] = mem
                    row.memory.append(mem)
            self._cpu, self._memory, self._previous_cpu = cpu, memory, previous

    # -- reading ----------------------------------------------------------------

    def recent(self, service: str, minutes: int = 5) -> list[dict[str, Any]]:
        """One row per minute, oldest first, ending with the current (partial) minute
        (``figures.summarize``)."""
        now = int(self.clock()) // 60
        with self._lock:
            per_minute = self._minutes.get(service, {})
            found = {
                m: per_minute[m].figures()
                for m in range(now - minutes + 1, now + 1)
                if m in per_minute
            }
        return [
            summarize(m * 60, found.get(m), self.buckets) for m in range(now - minutes + 1, now + 1)
        ]

    def minute_figures(self, first: int, last: int) -> dict[str, dict[int, Figures]]:
        """The kept minutes ``first`` to ``last`` (epoch minutes) of every service, for
        the metrics history; a minute nothing was counted in is left out."""
        with self._lock:
            return {
                name: {m: row.figures() for m, row in minutes.items() if first <= m <= last}
                for name, minutes in self._minutes.items()
            }

    def register(self, collector: Collector) -> None:
        """More figures on ``/metrics`` from a collector of their own (a cluster's nodes)."""
        self._registry.register(collector)

    def prometheus(self) -> str:
        """All figures in Prometheus's text exposition format 0.0.4."""
        return generate_latest(self._registry).decode()

    def collect(self) -> Iterator[Metric]:
        """The figures as Prometheus metric families (``Collector``), taken under the lock
        so that a scrape sees one consistent pass."""
        with self._lock:
            families = self._families()
        return iter(families)

    def _families(self) -> list[Metric]:
        services = sorted(self._totals)
        requests = CounterMetricFamily(
            "slipway_requests_total",
            "Requests to the service's host (App Runner: Requests).",
            labels=["service"],
        )
        responses = CounterMetricFamily(
            "slipway_responses_total",
            "Responses by status class (App Runner: 2xxStatusResponses, 4xxStatusResponses, "
            "5xxStatusResponses).",
            labels=["service", "status_class"],
        )
        latency = HistogramMetricFamily(
            "slipway_request_latency_seconds",
            "Time the router took to answer, in seconds (App Runner: RequestLatency).",
            labels=["service"],
        )
        bounds = [floatToGoString(b) for b in (*self.buckets, float("inf"))]
        for name in services:
            tally = self._totals[name]
            requests.add_metric([name], tally.requests)
            for status_class in sorted({"2xx", "4xx", "5xx", *tally.classes}):
                responses.add_metric([name, status_class], tally.classes[status_class])
            cumulative = itertools.accumulate(tally.buckets)
            buckets = list(zip(bounds, cumulative, strict=True))
            latency.add_metric([name], buckets, tally.latency_sum)
        active = GaugeMetricFamily(
            "slipway_active_instances",
            "Instances serving the service (App Runner: ActiveInstances).",
            labels=["service"],
        )
        for name, count in sorted(self._active.items()):
            active.add_metric([name], count)
        cpu = GaugeMetricFamily(
            "slipway_instance_cpu_utilization_percent",
            "CPU used, in % of the instance's CPU limit (App Runner: CPUUtilization).",
            labels=["service", "instance"],
        )
        memory = GaugeMetricFamily(
            "slipway_instance_memory_utilization_percent",
            "Memory used, in % of the instance's memory limit (App Runner: MemoryUtilization).",
            labels=["service", "instance"],
        )
        restarts = GaugeMetricFamily(
            "slipway_instance_restarts",
            "Times the engine restarted the instance after it exited (a crash).",
            labels=["service", "instance"],
        )
        for family, values in (
            (cpu, self._cpu),
            (memory, self._memory),
            (restarts, self._restarts),
        ):
            for (name, instance), value in sorted(values.items()):
                family.add_metric([name, instance], round(value, 3))
        lines = CounterMetricFamily(
            "slipway_access_log_lines_total",
            "Access-log lines the collector read.",
            value=self.lines_read,
        )
        unparsed = CounterMetricFamily(
            "slipway_access_log_unparsed_lines_total",
            "Access-log lines the collector could not read (a Caddy log format it does not know).",
            value=self.lines_unparsed,
        )
        return [requests, responses, latency, active, cpu, memory, restarts, lines, unparsed]
