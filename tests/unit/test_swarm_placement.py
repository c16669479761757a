"""Placement on a cluster decided before anything is created, on plain node and task
listings: constraints as swarmkit reads them, the largest node named when an instance
fits none, and each node's room for the autoscaler's cap."""

from __future__ import annotations

from typing import Any

import pytest

from slipway.backends.swarm_placement import (
    NANO_PER_UNIT,
    NodeRoom,
    meets,
    node_rooms,
    placement_problem,
)
from slipway.backends.swarm_tasks import pull_failure
from slipway.scaling import ClusterCapacity

GB = 1024


def node(
    name: str,
    cpu: int = 2048,
    memory: int = 4 * GB,
    role: str = "worker",
    state: str = "ready",
    availability: str = "active",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "ID": f"id-{name}",
        "Spec": {"Role": role, "Availability": availability, "Labels": labels or {}},
        "Status": {"State": state, "Addr": "10.0.0.1"},
        "Description": {
            "Hostname": name,
            "Platform": {"OS": "linux", "Architecture": "x86_64"},
            "Resources": {"NanoCPUs": cpu * NANO_PER_UNIT, "MemoryBytes": memory * 1024**2},
            "Engine": {"Labels": {"disk": "ssd"}},
        },
    }


def held(on: str, cpu: int, memory: int, desired: str = "running") -> dict[str, Any]:
    reservations = {"NanoCPUs": cpu * NANO_PER_UNIT, "MemoryBytes": memory * 1024**2}
    return {
        "NodeID": f"id-{on}",
        "DesiredState": desired,
        "Spec": {"Resources": {"Reservations": reservations}},
    }


CLUSTER = [
    node("n1", role="manager"),
    node("n2", cpu=4096, memory=2 * GB, labels={"zone": "b"}),
    node("n3", state="down", cpu=8192, memory=16 * GB),
]


@pytest.mark.parametrize(
    ("constraint", "names"),
    [
        ("node.role==worker", {"n2", "n3"}),
        ("node.role != worker", {"n1"}),
        ("node.hostname==N2", {"n2"}),  # values compare case-insensitively
        ("node.labels.zone==b", {"n2"}),
        ("node.labels.zone!=b", {"n1", "n3"}),  # no such label meets only !=
        ("engine.labels.disk==ssd", {"n1", "n2", "n3"}),
        ("node.platform.arch==aarch64", set()),
    ],
)
def test_constraints_are_met_as_swarmkit_meets_them(constraint, names):
    assert {n["Description"]["Hostname"] for n in CLUSTER if meets(n, constraint)} == names


def test_an_instance_that_fits_some_ready_node_passes():
    assert placement_problem(CLUSTER, ["node.role==worker"], 2048, 2 * GB) is None


def test_a_constraint_no_ready_node_meets_is_named():
    said = placement_problem(CLUSTER, ["node.role==worker", "node.labels.zone==c"], 256, 512)
    assert said == "no ready node meets the placement constraint 'node.labels.zone==c'"


def test_an_instance_larger_than_any_ready_node_names_the_largest():
    # n3 (8 vCPU) is down: it does not count.
    said = placement_problem(CLUSTER, [], 4096, 4 * GB)
    assert said == (
        "it needs 4096 CPU units and 4096 MB, more than any node has: the largest, n2,"
        " has 4096 CPU units and 2048 MB"
    )


def test_a_cluster_with_no_ready_node_says_so():
    assert "no node" in placement_problem([node("n1", state="down")], [], 256, 512)


def test_rooms_are_ready_active_nodes_less_every_running_task():
    nodes = [*CLUSTER, node("n4", availability="drain")]
    tasks = [held("n1", 1024, GB), held("n1", 256, 512, desired="shutdown"), held("n2", 256, 0)]
    assert node_rooms(nodes, tasks) == [
        NodeRoom("n1", 2048, 4 * GB, 1024, 3 * GB),
        NodeRoom("n2", 4096, 2 * GB, 3840, 2 * GB),
    ]
    assert [r.name for r in node_rooms(nodes, tasks, ["node.role==manager"])] == ["n1"]


def test_the_cluster_cap_fits_instances_node_by_node():
    rooms = [NodeRoom("n1", 2048, 4096, 1000, 4096), NodeRoom("n2", 2048, 4096, 2048, 700)]
    room, said = ClusterCapacity(lambda: rooms).room_for([], [], (256, 512))
    # n1: 3 by CPU; n2: 1 by memory; not 3048 / 256 = 11 from the sums.
    assert room == 4
    assert said == "the cluster's capacity (2 ready node(s), 4096 CPU units, 8192 MB)"


def test_a_node_that_cannot_pull_is_named_with_its_registry_answer():
    nodes = {"id-n2": node("n2")}
    tasks = [
        {
            "CreatedAt": "t1",
            "NodeID": "id-n2",
            "Status": {"State": "rejected", "Err": "No such image: 127.0.0.1:5000/x@sha256:1"},
        },
        {"CreatedAt": "t2", "NodeID": "id-n2", "Status": {"State": "preparing"}},
    ]
    assert pull_failure(tasks, nodes) == (
        "node n2 cannot pull the image: No such image: 127.0.0.1:5000/x@sha256:1"
    )
    crashed = {
        "CreatedAt": "t1",
        "NodeID": "id-n2",
        "Status": {"State": "failed", "Err": "task: non-zero exit (3)"},
    }
    assert pull_failure([crashed], nodes) is None
