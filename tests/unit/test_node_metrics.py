"""A cluster's per-node figures on /metrics, from the cluster view's rows."""

from __future__ import annotations

import pytest

from slipway.backends.swarm_config import Cluster
from slipway.errors import InvalidRequest
from slipway.observe.metrics import Metrics
from slipway.observe.node_metrics import NodeMetrics

ROW = {
    "Name": "n2",
    "Role": "worker",
    "State": "down",
    "Availability": "active",
    "CpuReserved": 512,
    "CpuTotal": 2048,
    "MemoryReservedMb": 1024,
    "MemoryTotalMb": 4096,
    "Instances": 2,
}


def test_each_node_s_figures_are_on_metrics_after_a_sample():
    rows: list[dict] = []
    nodes = NodeMetrics(lambda: rows)
    metrics = Metrics(None)
    metrics.register(nodes)
    assert "slipway_node_instances{" not in metrics.prometheus()
    rows.append(ROW)
    nodes.sample()
    text = metrics.prometheus()
    assert 'slipway_node_instances{node="n2",role="worker"} 2.0' in text
    assert 'slipway_node_memory_reserved_bytes{node="n2",role="worker"} 1.073741824e+09' in text
    assert 'slipway_node_cpu_units{node="n2",role="worker"} 2048.0' in text
    assert 'slipway_node_ready{node="n2",role="worker"} 0.0' in text  # down
    assert 'slipway_node_state{availability="active",node="n2",state="down"} 1.0' in text


def test_node_daemons_are_named_node_equals_docker_host():
    cluster = Cluster(backend="swarm", node_hosts=("n2=unix:///run/n2.sock",))
    cluster.check()
    assert cluster.node_daemons == {"n2": "unix:///run/n2.sock"}
    with pytest.raises(InvalidRequest, match="swarm_node_docker_hosts"):
        Cluster(backend="swarm", node_hosts=("/run/n2.sock",)).check()
