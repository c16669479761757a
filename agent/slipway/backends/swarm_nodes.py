"""The cluster view (``slipway nodes``): each node's name, role, state, availability, the
CPU and memory its tasks reserve against its total, and the slipway instances on it.
A pure function over the manager's listings, so a unit test feeds it plain data."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .swarm_placement import name_of, reservations, total

# On the fence's tasks (``swarm_fence.py``): "installed", or "lifted" under fence: false.
LABEL_FENCE = "slipway.fence"


def fenced(tasks: Iterable[Mapping[str, Any]]) -> set[str]:
    """The ids of the nodes where a fence task that installs the fence is running."""
    return {
        task.get("NodeID") or ""
        for task in tasks
        if ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("Labels", {}).get(LABEL_FENCE)
        == "installed"
        and (task.get("Status") or {}).get("State") == "running"
    }


def node_rows(
    nodes: Iterable[Mapping[str, Any]],
    tasks: Iterable[Mapping[str, Any]],
    instance_services: set[str],
) -> list[dict[str, Any]]:
    """One row per node, in the API's casing. ``tasks`` are every task of the cluster;
    those the manager wants running count as reserved; those of ``instance_services``
    (slipway's Swarm services) as instances; a running fence task makes ``Fence``."""
    tasks = list(tasks)
    held = reservations(tasks, instance_services)
    with_fence = fenced(tasks)
    rows = []
    for node in nodes:
        cpu, memory, instances = held.get(node.get("ID") or "", (0, 0, 0))
        cpu_total, memory_total = total(node)
        spec = node.get("Spec") or {}
        rows.append(
            {
                "Name": name_of(node),
                "Role": spec.get("Role") or "",
                "Leader": bool((node.get("ManagerStatus") or {}).get("Leader")),
                "State": (node.get("Status") or {}).get("State") or "",
                "Address": (node.get("Status") or {}).get("Addr") or "",
                "Availability": spec.get("Availability") or "",
                "CpuReserved": cpu,
                "CpuTotal": cpu_total,
                "MemoryReservedMb": memory,
                "MemoryTotalMb": memory_total,
                "Instances": instances,
                "Fence": node.get("ID") in with_fence,
            }
        )
    return sorted(rows, key=lambda r: r["Name"])


def cluster_problems(nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """What ``/healthz`` should say about the cluster: each node not ready (its instances
    are being moved), each manager unreachable, and a lost quorum (fewer than a majority
    of managers reachable: the cluster can change nothing until they are back)."""
    problems, managers, reachable = [], 0, 0
    for node in nodes:
        name = name_of(node)
        status = node.get("Status") or {}
        if status.get("State") != "ready":
            address = status.get("Addr") or "no address"
            problems.append(f"swarm node {name} ({address}) is {status.get('State') or 'unknown'}")
        manager = node.get("ManagerStatus")
        if manager is not None:
            managers += 1
            if manager.get("Reachability") == "reachable":
                reachable += 1
            else:
                problems.append(f"swarm manager {name} is {manager.get('Reachability')}")
    if managers and reachable <= managers // 2:
        problems.append(f"swarm quorum lost: {reachable} of {managers} managers reachable")
    return problems
