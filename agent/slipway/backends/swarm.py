"""The Docker Swarm backend (``backend: swarm``): one Swarm service per instance.

Why one service per instance, not one per revision or per slipway service: the worker
already does blue/green, health gating, draining and replacement one instance at a
time (start beside, probe, switch the route, drain, stop this one). A Swarm service per
revision would leave Swarm to pick which task goes when it scales, and one per slipway
service would make Swarm's own rolling update race the worker's; a service of one
replica is an instance the worker can start, probe, drain and stop by itself, while
Swarm places it on a node with room, restarts it when it exits and moves it when its
node is lost.

Routing needs no ingress routing mesh (IPVS, missing on some kernels) and no VIP: each
instance publishes its app port in host mode on a port of ``swarm_ports`` unique in the
cluster (two instances may share a node), endpoints are ``dnsrr``, and the router
reaches ``<node address>:<port>``. Each slipway service's instances share an overlay
network of their own (``slipway-svc-<id>``), so they reach no other service's.
Confinement is the single host's: CPU and memory as limits and reservations (Swarm
places a task only where they fit), pids, capabilities, log rotation, user.

Images: the nodes pull the instance's image themselves, so it must name a registry
every node reaches; a code service's build is pushed there first (``swarm_images.py``,
``swarm_registry``). Builds run on the agent's own daemon. Docker errors are
translated here, into ``BackendError`` or, for pulls, a ``RegistryError`` subclass.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import docker
import docker.errors
import requests
from docker.types import ContainerSpec, EndpointSpec, Resources, RestartPolicy, TaskTemplate

from ..errors import BackendError
from . import (
    LABEL_DEPLOYMENT_ID,
    LABEL_MANAGED,
    LABEL_REVISION,
    LABEL_SERVICE_ID,
    LABEL_SERVICE_NAME,
    Confinement,
    Instance,
    InstanceSpec,
    LogStream,
)
from .docker_engine import container_name, nano_cpus
from .docker_networks import network_name
from .docker_pulls import pull_error
from .swarm_config import Cluster
from .swarm_images import BuildPusher
from .swarm_logs import follow_service
from .swarm_nodes import cluster_problems, node_rows
from .swarm_placement import NodeRoom, node_rooms, placement_problem
from .swarm_stats import SwarmStats
from .swarm_tasks import (
    LABEL_INSTANCE,
    free_port,
    published_port,
    pull_failure,
    to_instance,
    unplaced,
)

_INSTANCE_ID = re.compile(r"[0-9a-f]{64}")
_DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)
STOP_GRACE_SECONDS = 10  # SIGTERM, then SIGKILL this long after
RESTART_DELAY_SECONDS = 1  # Swarm's default of 5 s would leave a crashed instance out longer
NETWORK_REMOVE_SECONDS = 10.0  # a stopped task's endpoint leaves its network a bit later
PLACE_SECONDS = 10.0  # a task no node takes by then never will without a change
PULL_SECONDS = 60.0  # a node still pulling by then is left to the health check's wait


def _explain(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)


class SwarmEngine:
    """Runs instances as Swarm services through a manager node's Docker API."""

    def __init__(
        self,
        cluster: Cluster,
        confinement: Confinement | None = None,
        client: docker.DockerClient | None = None,
        registry_auth: Callable[[str], tuple[str, str] | None] | None = None,
    ) -> None:
        """``registry_auth``: the stored credentials of a registry host (``slipway
        registries login``), sent with each instance's service for its node's pull."""
        cluster.check()
        self.cluster = cluster
        self.confinement = confinement or Confinement()
        self.confinement.check()
        self.builds = BuildPusher(cluster.registry)
        where = cluster.docker_host or "DOCKER_HOST"
        if client is None:
            try:
                if cluster.docker_host:
                    client = docker.DockerClient(base_url=cluster.docker_host)
                else:
                    client = docker.from_env()
            except _DOCKER_ERRORS as exc:
                raise BackendError(
                    f"cannot reach the docker daemon ({where}): {_explain(exc)}"
                ) from exc
        self.client = client
        self.registry_auth = registry_auth
        self._where = where
        self._lock = threading.Lock()  # one free port, one network per service at a time
        self._last_port: int | None = None
        self.check_manager()
        self.stats = SwarmStats(self.client, self._inspect, cluster.node_daemons)

    def check_manager(self) -> None:
        """Refuse to run on a daemon that is not a Swarm manager, saying how to fix it."""
        try:
            swarm = self.client.info().get("Swarm") or {}
        except _DOCKER_ERRORS as exc:
            raise BackendError(
                f"cannot reach the docker daemon ({self._where}): {_explain(exc)}"
            ) from exc
        state = swarm.get("LocalNodeState") or "inactive"
        if state != "active" or not swarm.get("ControlAvailable"):
            role = "a worker" if state == "active" else f"not in a swarm ({state})"
            raise BackendError(
                f"backend: swarm needs a Swarm manager, but the docker daemon at {self._where}"
                f" is {role}: run `docker swarm init` there (or join it as a manager), set"
                " swarm_docker_host to a manager's socket, or set backend: docker"
            )

    def check_port(self) -> None:
        """At the agent's start: the daemon is still a manager (ports are per instance)."""
        self.check_manager()

    # --- images --------------------------------------------------------------------

    def pull(self, image: str, auth: tuple[str, str] | None = None) -> None:
        """Check that the manager can resolve ``image`` in its registry (each node pulls
        it itself when a task lands there); credentials are kept for the nodes' pulls."""
        auth_config = {"username": auth[0], "password": auth[1]} if auth else None
        try:
            if auth is not None:
                registry = docker.auth.resolve_repository_name(image)[0]
                self.client.login(auth[0], auth[1], registry=registry)
            self.client.api.inspect_distribution(image, auth_config=auth_config)
        except docker.errors.APIError as exc:
            raise pull_error(image, _explain(exc)) from exc
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"resolving {image} failed: {_explain(exc)}") from exc

    def remove_image(self, image: str) -> None:
        """Nothing: each node keeps its own copy, pruned by its own daemon."""

    # --- instances -----------------------------------------------------------------

    def start_instance(self, spec: InstanceSpec) -> Instance:
        """Create the instance's Swarm service; if it already exists, reuse it."""
        name = container_name(spec)
        existing = self.get_instance(name)
        if existing is not None:
            return self._adopt(existing, spec)
        labels = {
            **dict(spec.extra_labels),
            LABEL_MANAGED: "true",
            LABEL_INSTANCE: secrets.token_hex(32),
            LABEL_SERVICE_ID: spec.service_id,
            LABEL_SERVICE_NAME: spec.service_name,
            LABEL_DEPLOYMENT_ID: spec.deployment_id,
            LABEL_REVISION: spec.revision,
        }
        spec = replace(spec, image=self.builds.shareable(spec.image))
        try:
            self._login(spec.image)
            problem = placement_problem(
                self.client.api.nodes(), self.cluster.constraints, spec.cpu_units, spec.memory_mb
            )
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"listing the swarm's nodes failed: {_explain(exc)}") from exc
        if problem is not None:
            raise BackendError(f"no node can run instance {name}: {problem}")
        try:
            with self._lock:
                network = self._network(spec.service_id)
                port = free_port(self._ports_taken(), self.cluster.port_range, self._last_port)
                if port is None:
                    raise BackendError(f"no free port left in swarm_ports {self.cluster.ports}")
                self._last_port = port
                created = self.client.api.create_service(
                    self._task_template(spec, labels),
                    name=name,
                    labels=labels,
                    networks=[network],
                    endpoint_spec=EndpointSpec(
                        mode="dnsrr",
                        ports={port: (spec.port, "tcp", "host")} if spec.port else {},
                    ),
                )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:  # another start of the same instance won the race
                found = self.get_instance(name)
                if found is not None:
                    return self._adopt(found, spec)
            raise BackendError(f"creating swarm service {name} failed: {_explain(exc)}") from exc
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"creating swarm service {name} failed: {_explain(exc)}") from exc
        return self._placed(created["ID"], name)

    def _login(self, image: str) -> None:
        """Log the manager's client in to the image's registry if credentials are stored:
        docker-py sends that login with the service (``--with-registry-auth``)."""
        if self.registry_auth is None:
            return
        registry = docker.auth.resolve_repository_name(image)[0]
        found = self.registry_auth(registry)
        if found is not None:  # a login the client holds already is not sent again
            self.client.login(found[0], found[1], registry=registry)

    def _placed(self, service: str, name: str) -> Instance:
        """The new instance once its node got its image and started it (or, past
        ``PULL_SECONDS``, once placed: its address is known). If no node takes it within
        ``PLACE_SECONDS``, or a node cannot pull its image, it is removed and the error
        says why (the room no node has; the node and its registry's answer)."""
        start = time.monotonic()
        while True:
            try:
                tasks = self.client.api.tasks(filters={"service": service})
                nodes = self._nodes()
            except _DOCKER_ERRORS as exc:
                raise BackendError(
                    f"inspecting swarm service {name} failed: {_explain(exc)}"
                ) from exc
            why = unplaced(tasks)
            refused = pull_failure(tasks, nodes)
            waited = time.monotonic() - start
            if refused is not None or (why is not None and waited > PLACE_SECONDS):
                self.stop_instance(service, timeout=0)
                raise BackendError(f"no node can run instance {name}: {refused or why}")
            if why is None:
                found = self.get_instance(service)
                if found is None:
                    raise BackendError(f"swarm service {name} vanished as it was created")
                if found.running or waited > PULL_SECONDS:
                    return found
            time.sleep(0.2)

    def _task_template(self, spec: InstanceSpec, labels: dict[str, str]) -> TaskTemplate:
        box = self.confinement
        options: dict[str, Any] = {}
        if spec.command:
            options = {"command": ["/bin/sh", "-c"], "args": [spec.command]}
        container = ContainerSpec(
            spec.image,
            env={**dict(spec.env), "PORT": str(spec.port)},
            labels=labels,
            user=box.user or None,
            stop_grace_period=STOP_GRACE_SECONDS * 1_000_000_000,
            cap_drop=["ALL"],
            cap_add=list(box.capabilities),
            **options,
        )
        memory = spec.memory_mb * 1024 * 1024
        cpus = nano_cpus(spec.cpu_units)
        resources = Resources(
            cpu_limit=cpus, mem_limit=memory, cpu_reservation=cpus, mem_reservation=memory
        )
        resources["Limits"]["Pids"] = box.pids_limit  # API 1.41 (Docker 20.10)
        template = TaskTemplate(
            container,
            resources=resources,
            restart_policy=RestartPolicy(
                condition="any", delay=RESTART_DELAY_SECONDS * 1_000_000_000
            ),
            log_driver={"Name": "json-file", "Options": box.docker_log_options()},
            placement={"Constraints": list(self.cluster.constraints)}
            if self.cluster.constraints
            else None,
        )
        return template

    def _adopt(self, found: Instance, spec: InstanceSpec) -> Instance:
        same = (
            found.service_id == spec.service_id
            and found.deployment_id == spec.deployment_id
            and found.revision == spec.revision
        )
        if not same:
            raise BackendError(f"swarm service {found.name} is taken by another service")
        return found

    def _ports_taken(self) -> set[int]:
        try:
            services = self.client.api.services()
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"listing swarm services failed: {_explain(exc)}") from exc
        return {p for s in services if (p := published_port(s)) is not None}

    def _network(self, service_id: str) -> str:
        """The service's overlay network, made with its first instance (under the lock)."""
        name = network_name(service_id)
        if not self.client.api.networks(names=[name]):
            self.client.api.create_network(
                name,
                driver="overlay",
                labels={LABEL_MANAGED: "true", LABEL_SERVICE_ID: service_id},
                check_duplicate=True,
            )
        return name

    def _inspect(self, instance_id: str) -> dict[str, Any]:
        """The Swarm service of an instance id (``LABEL_INSTANCE``), or of a Swarm service
        id or name; NotFound when there is none."""
        if _INSTANCE_ID.fullmatch(instance_id):
            found = self.client.api.services(filters={"label": f"{LABEL_INSTANCE}={instance_id}"})
            if not found:
                raise docker.errors.NotFound(f"no swarm service of instance {instance_id}")
            return found[0]
        return self.client.api.inspect_service(instance_id)

    def _nodes(self) -> dict[str, dict[str, Any]]:
        return {n["ID"]: n for n in self.client.api.nodes()}

    def get_instance(self, instance_id: str) -> Instance | None:
        """The instance with this Swarm service id or name, or None if it is gone."""
        try:
            service = self._inspect(instance_id)
            tasks = self.client.api.tasks(filters={"service": service["ID"]})
            nodes = self._nodes()
        except docker.errors.NotFound:
            return None
        except _DOCKER_ERRORS as exc:
            raise BackendError(
                f"inspecting swarm service {instance_id} failed: {_explain(exc)}"
            ) from exc
        if (service.get("Spec", {}).get("Labels") or {}).get(LABEL_MANAGED) != "true":
            return None
        return to_instance(
            service, [t for t in tasks if t.get("ServiceID") == service["ID"]], nodes
        )

    def list_instances(self, service_id: str | None = None) -> list[Instance]:
        """All slipway instances (of one service), in any state, oldest name first."""
        labels = [f"{LABEL_MANAGED}=true"]
        if service_id is not None:
            labels.append(f"{LABEL_SERVICE_ID}={service_id}")
        try:
            services = self.client.api.services(filters={"label": labels})
            tasks = (
                self.client.api.tasks(filters={"service": [s["ID"] for s in services]})
                if services
                else []
            )
            nodes = self._nodes() if services else {}
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"listing swarm services failed: {_explain(exc)}") from exc
        by_service: dict[str, list[dict[str, Any]]] = {}
        for task in tasks:
            by_service.setdefault(task.get("ServiceID") or "", []).append(task)
        found = [to_instance(s, by_service.get(s["ID"], []), nodes) for s in services]
        return sorted(found, key=lambda i: i.name)

    def stop_instance(self, instance_id: str, timeout: int = 10) -> None:
        """Scale the instance's service to none (SIGTERM, SIGKILL after the grace), wait
        for its task to end on every node that answers, then remove it; a missing one
        is fine. Its service's network goes with its last instance."""
        try:
            service = self._inspect(instance_id)
        except docker.errors.NotFound:
            return
        except _DOCKER_ERRORS as exc:
            raise BackendError(
                f"stopping swarm service {instance_id} failed: {_explain(exc)}"
            ) from exc
        service_id = (service["Spec"].get("Labels") or {}).get(LABEL_SERVICE_ID)
        try:
            self.client.services.get(service["ID"]).scale(0)
            deadline = time.monotonic() + timeout + STOP_GRACE_SECONDS
            while self._tasks_up(service["ID"]) and time.monotonic() < deadline:
                time.sleep(0.2)
            self.client.api.remove_service(service["ID"])
        except docker.errors.NotFound:
            pass
        except _DOCKER_ERRORS as exc:
            raise BackendError(
                f"stopping swarm service {instance_id} failed: {_explain(exc)}"
            ) from exc
        if service_id:
            self._release_network(service_id)

    def _tasks_up(self, service: str) -> bool:
        """Whether a task of ``service`` still runs on a node the manager sees ready (one on
        a lost node never reports its end)."""
        nodes = self._nodes()
        return any(
            (t.get("Status") or {}).get("State") in ("running", "starting", "preparing")
            and ((nodes.get(t.get("NodeID") or "") or {}).get("Status") or {}).get("State")
            == "ready"
            for t in self.client.api.tasks(filters={"service": service})
        )

    def _release_network(self, service_id: str) -> None:
        """Remove the service's network once none of its instances is left; best effort:
        an endpoint a node has not yet let go keeps it until the next stop."""
        name = network_name(service_id)
        deadline = time.monotonic() + NETWORK_REMOVE_SECONDS
        while True:
            with self._lock:
                if self.list_instances(service_id):
                    return
                try:
                    for network in self.client.api.networks(names=[name]):
                        self.client.api.remove_network(network["Id"])
                    return
                except docker.errors.NotFound:
                    return
                except _DOCKER_ERRORS:
                    if time.monotonic() > deadline:
                        return
            time.sleep(0.5)

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster view: every node, its reservations and slipway instances."""
        try:
            nodes = self.client.api.nodes()
            tasks = self.client.api.tasks(filters={"desired-state": "running"})
            mine = self.client.api.services(filters={"label": f"{LABEL_MANAGED}=true"})
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"listing the swarm's nodes failed: {_explain(exc)}") from exc
        return node_rows(nodes, tasks, {s["ID"] for s in mine})

    def rooms(self) -> list[NodeRoom]:
        """What each node that may take an instance (ready, active, within
        ``swarm_constraints``) has left: the autoscaler's cap on a cluster."""
        try:
            nodes = self.client.api.nodes()
            tasks = self.client.api.tasks(filters={"desired-state": "running"})
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"listing the swarm's nodes failed: {_explain(exc)}") from exc
        return node_rooms(nodes, tasks, self.cluster.constraints)

    def check_cluster(self) -> None:
        """Raise, naming them, when nodes are lost or the managers' quorum is: a job of
        the agent's, so ``/healthz`` says the cluster is degraded."""
        try:
            nodes = self.client.api.nodes()
        except _DOCKER_ERRORS as exc:  # no leader: fewer than half the managers answer
            lost = "swarm quorum lost: " if "have a leader" in _explain(exc) else ""
            raise BackendError(f"{lost}listing the swarm's nodes failed: {_explain(exc)}") from exc
        problems = cluster_problems(nodes)
        if problems:
            raise BackendError("; ".join(problems))

    # --- logs and stats ------------------------------------------------------------

    def logs(self, instance_id: str, tail: int = 50) -> str:
        """The last ``tail`` lines of the instance's tasks' stdout and stderr."""
        try:
            service = self._inspect(instance_id)["ID"]
            raw = self.client.api.service_logs(service, stdout=True, stderr=True, tail=tail)
            data = raw if isinstance(raw, bytes) else b"".join(raw)
        except docker.errors.NotFound as exc:
            raise BackendError(f"swarm service {instance_id} not found") from exc
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"reading logs of {instance_id} failed: {_explain(exc)}") from exc
        return data.decode("utf-8", errors="replace")

    def follow_logs(self, instance_id: str, since_ns: int) -> LogStream | None:
        """The instance's stdout and stderr from ``since_ns`` on, through the manager
        (``swarm_logs.py``); None when the instance is gone."""
        try:
            service = self._inspect(instance_id)
        except docker.errors.NotFound:
            return None
        except _DOCKER_ERRORS as exc:
            raise BackendError(
                f"inspecting swarm service {instance_id} failed: {_explain(exc)}"
            ) from exc
        found = self.get_instance(service["ID"])
        return follow_service(self.client, service["ID"], since_ns, bool(found and found.running))

    def instance_stats(self, instance_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """One sample per instance, from the daemon of the node it runs on
        (``swarm_stats.py``, ``swarm_node_docker_hosts``)."""
        return self.stats.sample(instance_ids)

    def network_problems(self, names: list[str]) -> dict[str, str]:
        """VPC connectors name networks of one host: none can be joined on a cluster yet."""
        return dict.fromkeys(names, "cannot be joined by instances with backend: swarm")

    def cpu_limits(self, instance_ids: Iterable[str]) -> dict[str, float | None]:
        """Cores each instance may use, from its service's resource limits."""
        return self.stats.cpu_limits(instance_ids)
