"""The host fence on every node of a Swarm cluster: a global service ``slipway-fence``.

One task per node (``mode: global``), on the node's host network with NET_ADMIN and
NET_RAW, runs ``fence_node.py``'s script: the single host's chains, built by the same
code, entered from ``docker_gwbridge``. The image is slipway's Python base image with
Debian's iptables, built once on the agent's daemon (named by its recipe's hash) and
pushed to ``swarm_registry`` like a code service's build, so every node pulls it.

The agent's ``fence`` job runs ``ensure`` at its start and then every
``reconcile_interval``: the service is created, or replaced when its script changes (a
node joined or left, ``fence_allow_ports`` changed, ``fence: false``: the lift script),
and every ready node without a running fence task is named, so ``/healthz`` says the
fence is missing there. The rules outlive a replaced task: a node is never unfenced
while its task is swapped.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping
from typing import Any

import docker
import docker.errors
import requests
from docker.types import EndpointSpec, RestartPolicy, ServiceMode

from ..errors import BackendError
from .fence import Isolation
from .fence_node import install_script, lift_script
from .swarm_images import BuildPusher
from .swarm_nodes import LABEL_FENCE, fenced
from .swarm_placement import name_of

SERVICE = "slipway-fence"
LABEL_SPEC = "slipway.fence.spec"  # the hash of image and script: replaced when it moves
BASE_IMAGE = "slipway/base-python:3.11"
DOCKERFILE = (
    f"FROM {BASE_IMAGE}\n"
    "RUN apt-get update -q && apt-get install -y -q iptables && rm -rf /var/lib/apt/lists/*\n"
)
IMAGE = "slipway/fence:" + hashlib.sha256(DOCKERFILE.encode()).hexdigest()[:12]
_DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)


def node_addresses(nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each node's address as the others reach it (a manager may report 0.0.0.0 in its
    status; its manager address then says)."""
    found = []
    for node in nodes:
        address = (node.get("Status") or {}).get("Addr") or ""
        if address in ("", "0.0.0.0"):
            address = ((node.get("ManagerStatus") or {}).get("Addr") or "").rpartition(":")[0]
        if address:
            found.append(address)
    return sorted(set(found))


def unfenced(nodes: Iterable[Mapping[str, Any]], tasks: Iterable[Mapping[str, Any]]) -> list[str]:
    """``/healthz`` lines: each ready, active node where no fence task installs it."""
    tasks = list(tasks)
    with_fence = fenced(tasks)
    said = {
        t.get("NodeID"): (t.get("Status") or {}).get("Err") or (t.get("Status") or {}).get("State")
        for t in tasks
    }
    problems = []
    for node in nodes:
        ready = (node.get("Status") or {}).get("State") == "ready"
        active = (node.get("Spec") or {}).get("Availability") == "active"
        if ready and active and node.get("ID") not in with_fence:
            why = said.get(node.get("ID")) or "no task"
            problems.append(f"no host fence on node {name_of(node)} ({why})")
    return problems


class NodeFence:
    """Keeps ``slipway-fence`` on the cluster in step with the ``fence`` settings."""

    def __init__(
        self,
        client: docker.DockerClient,
        builds: BuildPusher,
        isolation: Isolation,
        builder: docker.DockerClient | None = None,
    ) -> None:
        """``client``: the manager's; ``builder``: the agent's own daemon, which builds
        the image (``BuildPusher`` pushes it from there)."""
        self.client = client
        self.builds = builds
        self.isolation = isolation
        self._builder = builder
        self._image: str | None = None

    def ensure(self) -> None:
        """Create or replace the service as the settings say; raise naming every node
        without the fence (a job's failure is a ``/healthz`` problem)."""
        try:
            nodes = self.client.api.nodes()
            if self.isolation.fence:
                script = install_script(self.isolation.ports(), node_addresses(nodes))
            else:
                script = lift_script()
            self._deploy(self.image(), script, "installed" if self.isolation.fence else "lifted")
            if not self.isolation.fence:
                return
            tasks = self.client.api.tasks(filters={"service": SERVICE, "desired-state": "running"})
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"fence: the {SERVICE} service: {exc}") from exc
        problems = unfenced(nodes, tasks)
        if problems:
            raise BackendError("; ".join(problems))

    def image(self) -> str:
        """The fence image as every node pulls it: built here once, then pushed."""
        if self._image is None:
            builder = self._builder = self._builder or docker.from_env()
            try:
                builder.images.get(IMAGE)
            except docker.errors.ImageNotFound:
                try:
                    builder.images.build(
                        fileobj=io.BytesIO(DOCKERFILE.encode()), tag=IMAGE, rm=True
                    )
                except _DOCKER_ERRORS as exc:
                    raise BackendError(f"fence: building {IMAGE} failed: {exc}") from exc
            try:
                self._image = self.builds.shareable(IMAGE)
            except BackendError as exc:
                raise BackendError(
                    f"fence on the cluster's nodes: {exc} (or set fence: false)"
                ) from exc
        return self._image

    def _deploy(self, image: str, script: str, mode: str) -> None:
        spec = hashlib.sha256(f"{image}\n{script}".encode()).hexdigest()[:16]
        found = self.client.services.list(filters={"name": SERVICE})
        current = [s for s in found if s.name == SERVICE]
        if current and (current[0].attrs["Spec"].get("Labels") or {}).get(LABEL_SPEC) == spec:
            return
        for old in current:
            old.remove()  # the rules stay on the nodes until the new task rewrites them
        self.client.services.create(
            image,
            command=["sh", "-c", script],
            name=SERVICE,
            labels={LABEL_SPEC: spec},
            container_labels={LABEL_FENCE: mode},
            mode=ServiceMode("global"),
            networks=["host"],
            cap_add=["NET_ADMIN", "NET_RAW"],
            hostname="{{.Node.Hostname}}",
            restart_policy=RestartPolicy(condition="any", delay=1_000_000_000),
            endpoint_spec=EndpointSpec(mode="dnsrr"),
        )
