"""The jobs that feed ``Metrics``: the access log and the instances, sampled on the agent's
scheduler.

Apart from ``metrics.py`` because that module is the figures alone (counting, keeping,
exposing them) and knows neither the scheduler nor the backend; these jobs are where
the figures meet the live services, their instances and the backend's stats.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..backends import Backend
from ..jobs import Jobs
from .metrics import Metrics

REQUESTS_JOB = "metrics-requests"
RESOURCES_JOB = "metrics-resources"


class MetricsCollector:
    """Two jobs on the agent's scheduler: the access log every ``interval`` s; instance
    counts and the backend's stats every ``stats_interval`` s. A failing pass is logged
    and shown on ``/healthz`` by the scheduler, and the next one comes at its time."""

    def __init__(
        self,
        metrics: Metrics,
        hosts: Callable[[], Mapping[str, str]],
        instances: Callable[[], Iterable[tuple[str, str]]],
        backend: Backend,
        *,
        served: Callable[[], Mapping[str, Any]] = dict,
        restarts: Callable[[], Mapping[tuple[str, str], int]] = dict,
        interval: float = 5.0,
        stats_interval: float = 15.0,
    ) -> None:
        """``hosts``: host -> service name, of every live service. ``instances``: (service
        name, container id or name) of every instance serving now. ``served``: what the
        router counted itself per host since its last call (``Metrics.count_served``).
        ``restarts``: (service name, container name) -> the engine's restarts of it."""
        self.metrics = metrics
        self.hosts = hosts
        self.instances = instances
        self.backend = backend
        self.served = served
        self.restarts = restarts
        self.interval = interval
        self.stats_interval = stats_interval
        self._limits: dict[str, float | None] = {}

    def schedule(self, jobs: Jobs) -> None:
        jobs.every(REQUESTS_JOB, self.interval, self.tick_requests)
        jobs.every(RESOURCES_JOB, self.stats_interval, self.tick_resources)

    def tick_requests(self) -> int:
        """The access log first, then the router's own counts: a request a test sees in
        the log was answered before the counters are read."""
        hosts = self.hosts()
        lines = self.metrics.collect_requests(hosts)
        self.metrics.count_served(hosts, self.served())
        return lines

    def tick_resources(self) -> None:
        pairs = list(self.instances())
        counts = Counter(name for name, _ in pairs)
        names = set(self.hosts().values()) | set(counts)
        self.metrics.set_active_instances({name: counts[name] for name in names})
        self.metrics.set_restarts(self.restarts())
        ids = [container for _, container in pairs]
        self._limits = {i: self._limits[i] for i in ids if i in self._limits}
        self._limits.update(self.backend.cpu_limits([i for i in ids if i not in self._limits]))
        stats = self.backend.instance_stats(ids)
        self.metrics.collect_resources(
            ((name, c, stats[c]) for name, c in pairs if c in stats), cpu_limits=self._limits
        )
