"""Instance CPU and memory figures on a cluster, as on one host (Docker's stats shape).

The manager knows where each instance's task runs but holds no stats: each node's own
daemon does. ``swarm_node_docker_hosts`` says where each node's daemon answers; the
figures of an instance come from its container there, read in parallel like the
single-host backend's (one ``one-shot`` call per container, sharing the daemon's 1 s
tick). Instances on a node not named there have no figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import docker.errors
import requests

from ..errors import BackendError
from .swarm_placement import name_of
from .swarm_tasks import current_task

_DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)
STATS_WORKERS = 8  # concurrent stats calls, across nodes

Inspect = Callable[[str], dict[str, Any]]  # instance id -> its Swarm service; NotFound


class SwarmStats:
    """Stats and CPU limits of instances, through the manager (``client``) for where they
    run and each node's daemon (``daemons``: node host name -> docker host) for figures."""

    def __init__(
        self, client: docker.DockerClient, inspect: Inspect, daemons: Mapping[str, str]
    ) -> None:
        self.client = client
        self.inspect = inspect
        self.daemons = dict(daemons)
        self._clients: dict[str, docker.DockerClient] = {}

    def _services(self, instance_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        found = {}
        for instance_id in instance_ids:
            try:
                found[instance_id] = self.inspect(instance_id)
            except docker.errors.NotFound:
                continue
            except _DOCKER_ERRORS as exc:
                raise BackendError(f"inspecting swarm service {instance_id} failed: {exc}") from exc
        return found

    def cpu_limits(self, instance_ids: Iterable[str]) -> dict[str, float | None]:
        """Cores each instance may use, from its service's resource limits."""
        limits: dict[str, float | None] = {}
        for instance_id, service in self._services(instance_ids).items():
            task = service["Spec"].get("TaskTemplate") or {}
            nano = ((task.get("Resources") or {}).get("Limits") or {}).get("NanoCPUs")
            limits[instance_id] = nano / 1e9 if nano else None
        return limits

    def sample(self, instance_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """One stats sample per instance whose task runs on a node with a daemon named in
        ``daemons``; others, and instances that are gone, are left out."""
        ids = list(instance_ids)
        if not ids or not self.daemons:
            return {}
        where = self._containers(ids)
        if not where:
            return {}

        def fetch(item: tuple[str, tuple[str, str]]) -> tuple[str, dict[str, Any] | None]:
            instance_id, (node, container) = item
            try:
                return instance_id, apis[node].stats(container, stream=False, one_shot=True)
            except (docker.errors.NotFound, requests.exceptions.JSONDecodeError):
                return instance_id, None  # gone, or going as it answered

        try:
            apis = {node: self._client(node).api for node, _ in where.values()}
            with ThreadPoolExecutor(min(STATS_WORKERS, len(where))) as pool:
                results = list(pool.map(fetch, where.items()))
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"docker stats on a swarm node failed: {exc}") from exc
        return {i: s for i, s in results if s and s.get("memory_stats")}

    def _containers(self, ids: list[str]) -> dict[str, tuple[str, str]]:
        """Instance id -> (node host name, container id) of its running task."""
        services = self._services(ids)
        try:
            nodes = {n["ID"]: n for n in self.client.api.nodes()}
            tasks = (
                self.client.api.tasks(filters={"service": [s["ID"] for s in services.values()]})
                if services
                else []
            )
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"listing the swarm's tasks failed: {exc}") from exc
        where = {}
        for instance_id, service in services.items():
            task = current_task(t for t in tasks if t.get("ServiceID") == service["ID"])
            status = (task or {}).get("Status") or {}
            container = (status.get("ContainerStatus") or {}).get("ContainerID")
            node = name_of(nodes.get((task or {}).get("NodeID") or "") or {})
            if status.get("State") == "running" and container and node in self.daemons:
                where[instance_id] = (node, container)
        return where

    def _client(self, node: str) -> docker.DockerClient:
        if node not in self._clients:
            self._clients[node] = docker.DockerClient(base_url=self.daemons[node])
        return self._clients[node]
