"""What a Swarm service of one instance looks like as an ``Instance``: pure functions
over the manager's inspects (service, its tasks, the nodes), unit-tested with plain data.

A Swarm service keeps one task per attempt: a task that exits or whose node is lost is
replaced by a new one (on another node, if its node is gone). The instance is the
newest task the manager wants running; older tasks count as restarts, as Docker's
restart policy counts them for a container.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from . import LABEL_DEPLOYMENT_ID, LABEL_REVISION, LABEL_SERVICE_ID, Instance
from .swarm_placement import name_of

# An instance's id: 64 hex digits like a container's (log streams are named by it), on
# its Swarm service as a label; Swarm's own service ids are not hex.
LABEL_INSTANCE = "slipway.instance-id"

# Task states on the way to running (Swarm's task lifecycle).
_STARTING = {
    "new",
    "allocated",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
}


def published_port(service: Mapping[str, Any]) -> int | None:
    """The host-mode port the service's app port is published on."""
    ports = ((service.get("Spec") or {}).get("EndpointSpec") or {}).get("Ports") or ()
    for port in ports:
        if port.get("PublishedPort"):
            return int(port["PublishedPort"])
    return None


def current_task(tasks: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The newest task the manager wants running, else the newest of all."""
    ordered = sorted(tasks, key=lambda t: t.get("CreatedAt") or "")
    wanted = [t for t in ordered if t.get("DesiredState") == "running"]
    if wanted:
        return wanted[-1]
    return ordered[-1] if ordered else None


def _exit_code(tasks: list[Mapping[str, Any]]) -> int | None:
    ended = [
        t
        for t in tasks
        if (t.get("Status") or {}).get("State") in ("failed", "complete", "shutdown")
        and ((t.get("Status") or {}).get("ContainerStatus") or {}).get("ExitCode") is not None
    ]
    if not ended:
        return None
    last = max(ended, key=lambda t: t.get("CreatedAt") or "")
    return int(last["Status"]["ContainerStatus"]["ExitCode"])


def to_instance(
    service: Mapping[str, Any],
    tasks: list[Mapping[str, Any]],
    nodes: Mapping[str, Mapping[str, Any]],
) -> Instance:
    """An instance from its Swarm service, that service's tasks and the cluster's nodes
    (by node id). It runs only while its task runs on a node the manager sees ready; a
    task on a lost node, or one being replaced, is ``restarting``: the engine is bringing
    it back, so the upkeep waits instead of starting another."""
    spec = service.get("Spec") or {}
    labels = spec.get("Labels") or {}
    task = current_task(tasks)
    restarts = max(0, len(tasks) - 1)
    state, host_ip, host_port, started_at = "created", None, None, None
    node: Mapping[str, Any] = {}
    if task is not None:
        status = task.get("Status") or {}
        node = nodes.get(task.get("NodeID") or "") or {}
        node_status = node.get("Status") or {}
        node_ready = node_status.get("State") == "ready"
        task_state = status.get("State") or ""
        if task_state == "running" and node_ready:
            state, started_at = "running", status.get("Timestamp")
            host_ip, host_port = node_status.get("Addr") or None, published_port(service)
        elif task_state == "running" or (task_state in _STARTING and restarts):
            state = "restarting"
        elif task_state in _STARTING:
            state = "created"
            if node_ready:  # placed: where it will answer is known before it starts
                host_ip, host_port = node_status.get("Addr") or None, published_port(service)
        elif task.get("DesiredState") == "running" or restarts:
            state = "restarting"
        else:
            state = "exited"
    return Instance(
        id=labels.get(LABEL_INSTANCE) or service.get("ID") or "",
        name=spec.get("Name") or "",
        service_id=labels.get(LABEL_SERVICE_ID, ""),
        deployment_id=labels.get(LABEL_DEPLOYMENT_ID, ""),
        revision=labels.get(LABEL_REVISION, ""),
        state=state,
        host_port=host_port,
        exit_code=None if state == "running" else _exit_code(tasks),
        started_at=started_at,
        restart_count=restarts,
        host_ip=host_ip,
        node=name_of(node) or None,
    )


def unplaced(tasks: Iterable[Mapping[str, Any]]) -> str | None:
    """Why the newest task waits for a node (Swarm's "no suitable node (...)", naming the
    constraint or resource no node meets), or None once one took it."""
    task = current_task(tasks)
    if task is None:
        return "the manager has not made its task yet"
    if task.get("NodeID"):
        return None
    return (task.get("Status") or {}).get("Err") or "no node has taken it yet"


# What a node's daemon says when it could not get an instance's image (swarmkit's
# executor reports the pull's own error, or the missing image it then met).
_PULL_FAILED = re.compile(
    r"pull|no such image|manifest unknown|unauthorized|no basic auth credentials|x509", re.I
)


def pull_failure(
    tasks: Iterable[Mapping[str, Any]], nodes: Mapping[str, Mapping[str, Any]]
) -> str | None:
    """ "node <name> cannot pull the image: <why>" for the newest task a node refused
    for want of its image (no CA, no credentials, no such image), else None."""
    refused = [
        t
        for t in tasks
        if (t.get("Status") or {}).get("State") in ("rejected", "failed")
        and _PULL_FAILED.search((t.get("Status") or {}).get("Err") or "")
    ]
    if not refused:
        return None
    task = max(refused, key=lambda t: t.get("CreatedAt") or "")
    node = name_of(nodes.get(task.get("NodeID") or "") or {}) or task.get("NodeID") or "?"
    return f"node {node} cannot pull the image: {task['Status']['Err']}"


def free_port(taken: Iterable[int], span: range, after: int | None = None) -> int | None:
    """A port of ``span`` no instance holds, searched round-robin from after ``after``:
    one just given up is not handed out again at once, while a router may still hold it."""
    held = set(taken)
    start = 0 if after is None or after not in span else span.index(after) + 1
    for step in range(len(span)):
        port = span[(start + step) % len(span)]
        if port not in held:
            return port
    return None
