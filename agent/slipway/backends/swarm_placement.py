"""Where an instance can go on the cluster, decided before anything is created: pure
functions over the manager's node and task listings, unit-tested with plain data.

Swarm itself would leave a task that fits no node pending forever, saying only "no
suitable node"; checking first lets the operation fail at once, naming the constraint
no ready node meets or the largest node an instance does not fit, with nothing made.
The same listings give each node's room, which the autoscaler's cap on a cluster sums.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NANO_PER_UNIT = 1_000_000_000 // 1024  # App Runner CPU units: 1024 = 1 vCPU
MB = 1024 * 1024
_CONSTRAINT = re.compile(r"\s*([\w.-]+)\s*(==|!=)\s*(\S+)\s*")


@dataclass(frozen=True)
class NodeRoom:
    """One ready, active node: its total and what its running tasks leave free, in CPU
    units and MB."""

    name: str
    cpu_total: int
    memory_total: int
    cpu_free: int
    memory_free: int

    def fits(self, cpu: int, memory: int) -> int:
        """How many more instances of ``cpu`` units and ``memory`` MB fit here."""
        if self.cpu_free < 0 or self.memory_free < 0:
            return 0
        return min(self.cpu_free // max(1, cpu), self.memory_free // max(1, memory))


def name_of(node: Mapping[str, Any]) -> str:
    return (node.get("Description") or {}).get("Hostname") or node.get("ID") or ""


def _attribute(node: Mapping[str, Any], key: str) -> str | None:
    """The value a constraint's key has on ``node`` (None: the node has no such label),
    as swarmkit reads it."""
    description = node.get("Description") or {}
    platform = description.get("Platform") or {}
    spec = node.get("Spec") or {}
    known = {
        "node.id": node.get("ID"),
        "node.hostname": description.get("Hostname"),
        "node.role": spec.get("Role"),
        "node.platform.os": platform.get("OS"),
        "node.platform.arch": platform.get("Architecture"),
    }
    if key in known:
        return known[key]
    for prefix, labels in (
        ("node.labels.", spec.get("Labels")),
        ("engine.labels.", (description.get("Engine") or {}).get("Labels")),
    ):
        if key.startswith(prefix):
            return (labels or {}).get(key[len(prefix) :])
    return None


def meets(node: Mapping[str, Any], constraint: str) -> bool:
    """Whether ``node`` meets one constraint; values compare case-insensitively, and a
    label the node lacks meets only ``!=`` (swarmkit's rules)."""
    match = _CONSTRAINT.fullmatch(constraint)
    if match is None:
        return False
    key, op, value = match.groups()
    have = _attribute(node, key)
    equal = have is not None and have.lower() == value.lower()
    return equal if op == "==" else not equal


def ready(nodes: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The nodes that take new tasks: ready and active (not paused or drained)."""
    return [
        n
        for n in nodes
        if (n.get("Status") or {}).get("State") == "ready"
        and (n.get("Spec") or {}).get("Availability") == "active"
    ]


def placement_problem(
    nodes: Iterable[Mapping[str, Any]],
    constraints: Iterable[str],
    cpu: int,
    memory: int,
) -> str | None:
    """Why no node could ever run an instance of ``cpu`` units and ``memory`` MB under
    ``constraints`` (naming the constraint no ready node meets, or the largest node),
    or None when one could. Room taken by other tasks is not counted: that passes."""
    candidates = ready(nodes)
    if not candidates:
        return "no node of the cluster is ready and active"
    for constraint in constraints:
        candidates = [n for n in candidates if meets(n, constraint)]
        if not candidates:
            return f"no ready node meets the placement constraint {constraint.strip()!r}"
    sizes = [(total(n), name_of(n)) for n in candidates]
    if any(c >= cpu and m >= memory for (c, m), _ in sizes):
        return None
    (big_cpu, big_memory), big = max(sizes)
    return (
        f"it needs {cpu} CPU units and {memory} MB, more than any node has: the largest,"
        f" {big}, has {big_cpu} CPU units and {big_memory} MB"
    )


def total(node: Mapping[str, Any]) -> tuple[int, int]:
    """The node's CPU units and MB."""
    total = (node.get("Description") or {}).get("Resources") or {}
    return (
        int(total.get("NanoCPUs") or 0) // NANO_PER_UNIT,
        int(total.get("MemoryBytes") or 0) // MB,
    )


def reservations(
    tasks: Iterable[Mapping[str, Any]], instance_services: set[str] | None = None
) -> dict[str, tuple[int, int, int]]:
    """Per node id: the CPU units and MB reserved by the tasks the manager wants running
    there, and how many of those are tasks of ``instance_services`` (slipway's)."""
    held: dict[str, list[int]] = {}
    for task in tasks:
        if task.get("DesiredState") != "running" or not task.get("NodeID"):
            continue
        spec = ((task.get("Spec") or {}).get("Resources") or {}).get("Reservations") or {}
        row = held.setdefault(task["NodeID"], [0, 0, 0])
        row[0] += int(spec.get("NanoCPUs") or 0)
        row[1] += int(spec.get("MemoryBytes") or 0)
        row[2] += task.get("ServiceID") in (instance_services or ())
    return {node: (c // NANO_PER_UNIT, m // MB, n) for node, (c, m, n) in held.items()}


def node_rooms(
    nodes: Iterable[Mapping[str, Any]],
    tasks: Iterable[Mapping[str, Any]],
    constraints: Iterable[str] = (),
) -> list[NodeRoom]:
    """The room of each node that may take an instance (ready, active, meeting
    ``constraints``): its total less what the tasks the manager wants running there
    reserve, whoever's they are."""
    held = reservations(tasks)
    rooms = []
    rules = list(constraints)
    for node in ready(nodes):
        if not all(meets(node, c) for c in rules):
            continue
        cpu, memory = total(node)
        used_cpu, used_memory, _ = held.get(node.get("ID") or "", (0, 0, 0))
        rooms.append(NodeRoom(name_of(node), cpu, memory, cpu - used_cpu, memory - used_memory))
    return sorted(rooms, key=lambda r: r.name)
