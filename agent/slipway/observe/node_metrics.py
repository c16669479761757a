"""Per-node figures of a cluster (``backend: swarm``) on ``/metrics``: each node's CPU and
memory reserved against its total, its slipway instances, and whether it is ready and
takes tasks. The rows are the cluster view's (``slipway nodes``), refreshed by a job on
the agent's scheduler; a scrape only reads the last pass."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

_MB = 1024 * 1024
NODES_JOB = "metrics-nodes"


class NodeMetrics:
    """A Prometheus collector of the last cluster view ``nodes`` returned (``sample``)."""

    def __init__(self, nodes: Callable[[], list[Mapping[str, Any]]]) -> None:
        self.nodes = nodes
        self._rows: list[Mapping[str, Any]] = []
        self._lock = threading.Lock()

    def sample(self) -> None:
        rows = self.nodes()
        with self._lock:
            self._rows = rows

    def collect(self) -> Iterator[Metric]:
        def gauge(name: str, text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, labels=["node", "role"])

        families = {
            "CpuReserved": gauge(
                "slipway_node_cpu_reserved_units",
                "CPU units (1024 = 1 vCPU) the node's tasks reserve.",
            ),
            "CpuTotal": gauge("slipway_node_cpu_units", "CPU units the node has."),
            "MemoryReservedMb": gauge(
                "slipway_node_memory_reserved_bytes", "Memory the node's tasks reserve."
            ),
            "MemoryTotalMb": gauge("slipway_node_memory_bytes", "Memory the node has."),
            "Instances": gauge("slipway_node_instances", "slipway instances on the node."),
        }
        up = gauge("slipway_node_ready", "1 while the node is ready and active, else 0.")
        state = GaugeMetricFamily(
            "slipway_node_state",
            "1 for the node's state (ready, down, unknown...) and availability.",
            labels=["node", "state", "availability"],
        )
        with self._lock:
            rows = list(self._rows)
        for row in rows:
            labels = [row["Name"], row["Role"]]
            for key, family in families.items():
                scale = _MB if key.startswith("Memory") else 1
                family.add_metric(labels, row[key] * scale)
            ready = row["State"] == "ready" and row["Availability"] == "active"
            up.add_metric(labels, int(ready))
            state.add_metric([row["Name"], row["State"], row["Availability"]], 1)
        yield from (*families.values(), up, state)
