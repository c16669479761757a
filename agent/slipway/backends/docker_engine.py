"""The Docker Engine backend: one container per instance, found again by its labels.

Docker SDK and daemon errors are translated here, and only here, into
``BackendError`` (the engine failed) or a ``RegistryError`` subclass (a pull
could not get the image; ``docker_pulls.py`` reads which). Each service's instances
join its own network (``docker_networks.py``), and a VPC connector's (``docker_vpc.py``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.utils import version_gte

from ..errors import BackendError
from . import (
    LABEL_DEPLOYMENT_ID,
    LABEL_MANAGED,
    LABEL_REVISION,
    LABEL_SERVICE_ID,
    LABEL_SERVICE_NAME,
    PUBLISHED_PORT,
    Confinement,
    Instance,
    InstanceSpec,
    LogStream,
)
from .docker_cgroups import CgroupStats
from .docker_inspect import Inspections
from .docker_logs import DockerLogs
from .docker_pulls import pull_error
from .docker_vpc import VpcNetworks

# The container port the app listens on, so its published host port can be read back.
LABEL_PORT = "slipway.port"

_DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)
# Each followed log stream holds one connection of the client's pool while it lasts.
POOL_SIZE = 1024
STATS_WORKERS = 10
_NAME_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_.-]+")
_ZERO_TIME = "0001-01-01T00:00:00Z"


def container_name(spec: InstanceSpec) -> str:
    """``slipway-{service}-{deployment[:8]}-{index}`` reduced to the characters docker allows."""
    raw = f"slipway-{spec.service_name}-{spec.deployment_id[:8]}-{spec.index}"
    return _NAME_BAD_CHARS.sub("-", raw)


def nano_cpus(cpu_units: int) -> int:
    """App Runner CPU units (1024 per vCPU) as docker's billionths of a CPU."""
    return cpu_units * 1_000_000_000 // 1024


def _explain(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)


def _to_instance(attrs: dict[str, Any]) -> Instance:
    """An instance from a container's inspect."""
    labels = attrs.get("Config", {}).get("Labels") or {}
    state = attrs.get("State") or {}
    status = state.get("Status") or ""
    host_ip = host_port = None
    if status == "running":
        host_ip, host_port = _published(attrs, labels.get(LABEL_PORT))
    exit_code = state.get("ExitCode") if status in ("exited", "dead", "restarting") else None
    started_at = state.get("StartedAt")
    return Instance(
        id=attrs.get("Id") or "",
        name=(attrs.get("Name") or "").lstrip("/"),
        service_id=labels.get(LABEL_SERVICE_ID, ""),
        deployment_id=labels.get(LABEL_DEPLOYMENT_ID, ""),
        revision=labels.get(LABEL_REVISION, ""),
        state=status,
        host_port=host_port,
        exit_code=exit_code,
        started_at=None if not started_at or started_at == _ZERO_TIME else started_at,
        restart_count=int(attrs.get("RestartCount") or 0),
        host_ip=host_ip,
    )


def _published(attrs: dict[str, Any], port: str | None) -> tuple[str | None, int | None]:
    """The address and port the app port is published on."""
    ports = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    bindings = ports.get(f"{port}/tcp") if port else None
    if bindings is None:  # no label: take the only published port there is
        bindings = next((b for b in ports.values() if b), None)
    for binding in bindings or ():
        if binding.get("HostPort"):
            return binding.get("HostIp") or None, int(binding["HostPort"])
    return None, None


def _bound_addresses(attrs: dict[str, Any]) -> set[str]:
    """The host addresses a container asked for, running or not (from its inspect)."""
    bindings = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    return {b.get("HostIp") for each in bindings.values() for b in each or () if b.get("HostIp")}


ADDRESS_ATTEMPTS = 3


class _PortTaken(BackendError):
    pass


def _in_network(address: str, network: ipaddress.IPv4Network) -> bool:
    try:
        return ipaddress.IPv4Address(address) in network
    except ValueError:
        return False


class DockerEngine:
    """Runs instances as containers on one Docker Engine."""

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        instance_network: str = "127.77.0.0/16",
        instance_port: int = PUBLISHED_PORT,
        confinement: Confinement | None = None,
        networks: VpcNetworks | None = None,
    ) -> None:
        if client is None:
            try:
                client = docker.from_env(max_pool_size=POOL_SIZE)
            except _DOCKER_ERRORS as exc:
                raise BackendError(f"cannot reach the docker daemon: {_explain(exc)}") from exc
        self.client = client
        try:
            self.network = ipaddress.IPv4Network(instance_network)
        except ValueError as exc:
            raise BackendError(f"instance_network {instance_network!r}: {exc}") from exc
        if not self.network.is_loopback or self.network.num_addresses < 4:
            raise BackendError(
                f"instance_network {instance_network} is not a loopback network of 4 or"
                " more addresses"
            )
        self.port = instance_port
        self.confinement = confinement or Confinement()
        self.confinement.check()
        self.networks = networks  # None: Docker's default bridge (tests of the engine alone)
        self._logs = DockerLogs(client)
        self._inspections = Inspections(client, f"{LABEL_MANAGED}=true")
        self._cgroups = CgroupStats()
        self._converted: dict[str, tuple[dict[str, Any], Instance]] = {}  # id -> kept
        self._allocating = threading.Lock()  # one free address per new container
        self._cursor: int | None = None  # where the next address search starts

    def check_port(self) -> None:
        """Fail early, and say why, when every instance start would: a socket on all
        addresses (0.0.0.0 or [::]) at the instances' port leaves none to them."""
        probe = str(self.network.broadcast_address - 1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((probe, self.port))
            except OSError as exc:
                raise BackendError(
                    f"instances cannot publish on port {self.port} ({probe}: {exc.strerror});"
                    " something on this host listens on that port on all addresses: stop it"
                    " or set instance_port"
                ) from exc

    def _free_address(self) -> str:
        """An address of the instance network that no slipway container has asked for,
        taken round-robin: one just given up is not handed out again at once, while
        Caddy may still hold it for the service that had it."""
        taken = {
            int(ipaddress.IPv4Address(a)) - int(self.network.network_address)
            for attrs in self._inspect_all([f"{LABEL_MANAGED}=true"])
            for a in _bound_addresses(attrs)
            if _in_network(a, self.network)
        }
        size = self.network.num_addresses - 2  # hosts: offsets 1 .. size
        if self._cursor is None:
            self._cursor = max(taken, default=0) % size
        for step in range(size):
            offset = (self._cursor + step) % size + 1
            if offset not in taken:
                self._cursor = offset % size
                return str(self.network.network_address + offset)
        raise BackendError(f"no free address left in instance_network {self.network}")

    def pull(self, image: str, auth: tuple[str, str] | None = None) -> None:
        """Pull ``image`` (by tag or digest); registry failures become RegistryError."""
        auth_config = {"username": auth[0], "password": auth[1]} if auth else None
        try:
            # Streamed, because the daemon reports most pull failures inside the stream.
            for event in self.client.api.pull(
                image, stream=True, decode=True, auth_config=auth_config
            ):
                if isinstance(event, dict) and event.get("error"):
                    raise pull_error(image, str(event["error"]))
        except docker.errors.APIError as exc:
            raise pull_error(image, _explain(exc)) from exc
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"pulling {image} failed: {_explain(exc)}") from exc

    def start_instance(self, spec: InstanceSpec) -> Instance:
        """Create and start the container for ``spec``; if it already exists, reuse it."""
        name = container_name(spec)
        labels = {
            **dict(spec.extra_labels),
            LABEL_MANAGED: "true",
            LABEL_SERVICE_ID: spec.service_id,
            LABEL_SERVICE_NAME: spec.service_name,
            LABEL_DEPLOYMENT_ID: spec.deployment_id,
            LABEL_REVISION: spec.revision,
            LABEL_PORT: str(spec.port),
        }
        environment = {**dict(spec.env), **({"PORT": str(spec.port)} if spec.port else {})}
        options: dict[str, Any] = {}
        if spec.command:
            options["entrypoint"] = ["/bin/sh", "-c"]
            options["command"] = [spec.command]
        attempts = 0
        while True:
            try:
                with self._allocating:
                    address = self._free_address()
                    container = self.client.containers.create(
                        spec.image,
                        name=name,
                        labels=labels,
                        environment=environment,
                        ports={f"{spec.port}/tcp": (address, self.port)} if spec.port else {},
                        restart_policy={"Name": "unless-stopped"},
                        nano_cpus=nano_cpus(spec.cpu_units),
                        mem_limit=f"{spec.memory_mb}m",
                        detach=True,
                        **self._confined(spec.service_id),
                        **options,
                    )
                    self._inspections.changed()  # the next address is picked without it
            except docker.errors.ImageNotFound as exc:
                raise BackendError(
                    f"image {spec.image} is not on this host (pull it first): {_explain(exc)}"
                ) from exc
            except docker.errors.APIError as exc:
                if exc.status_code == 409:
                    return self._adopt(name, spec, exc)
                raise BackendError(f"creating container {name} failed: {_explain(exc)}") from exc
            except _DOCKER_ERRORS as exc:
                raise BackendError(f"creating container {name} failed: {_explain(exc)}") from exc
            try:
                return self._start(container, name, spec.networks)
            except _PortTaken:
                # Another agent on this host took the same address meanwhile: next one.
                attempts += 1
                if attempts == ADDRESS_ATTEMPTS:
                    raise

    def network_problems(self, names: list[str]) -> dict[str, str]:
        """Why each of ``names`` cannot be joined by instances (VPC connectors)."""
        if self.networks is None:
            return dict.fromkeys(names, "cannot be joined: this engine has no networks")
        return self.networks.problems(names)

    def _confined(self, service_id: str) -> dict[str, Any]:
        box = self.confinement
        return {
            "network": self.networks.for_service(service_id) if self.networks else None,
            "pids_limit": box.pids_limit,
            "security_opt": ["no-new-privileges:true"],
            "cap_drop": ["ALL"],
            "cap_add": list(box.capabilities),
            "log_config": {"type": "json-file", "config": box.docker_log_options()},
            **({"user": box.user} if box.user else {}),
        }

    def _adopt(self, name: str, spec: InstanceSpec, conflict: Exception) -> Instance:
        """A container of this name exists: reuse it if it is the same instance."""
        try:
            container = self.client.containers.get(name)
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"container name {name} is taken: {_explain(conflict)}") from exc
        labels = container.labels
        same = (
            labels.get(LABEL_SERVICE_ID) == spec.service_id
            and labels.get(LABEL_DEPLOYMENT_ID) == spec.deployment_id
            and labels.get(LABEL_REVISION) == spec.revision
        )
        if not same:
            raise BackendError(f"container name {name} is taken by another container")
        if container.status == "running":
            return _to_instance(container.attrs)
        return self._start(container, name)

    def _start(self, container: Container, name: str, vpc: tuple[str, ...] = ()) -> Instance:
        try:
            if vpc:  # a VPC connector's networks, joined before it starts (docker_vpc.py)
                if self.networks is None:
                    raise BackendError(f"{name}: this engine has no networks to join")
                self.networks.join(container.id, vpc)
            container.start()
            container.reload()
        except BackendError:
            self._remove_quietly(container)
            raise
        except _DOCKER_ERRORS as exc:
            message = _explain(exc)
            self._remove_quietly(container)
            if "port is already allocated" in message or "address already in use" in message:
                raise _PortTaken(
                    f"starting container {name} failed: port conflict on "
                    f"{', '.join(_bound_addresses(container.attrs))}: {message}"
                ) from exc
            raise BackendError(f"starting container {name} failed: {message}") from exc
        self._inspections.changed(container.id)
        if vpc and self.networks is not None:
            self.networks.refresh_fence()  # its addresses there exist from its start
        return _to_instance(container.attrs)

    def _remove_quietly(self, container: Container) -> None:
        # Best effort: the caller is already reporting the real failure.
        with contextlib.suppress(*_DOCKER_ERRORS):
            container.remove(force=True)
        self._inspections.changed(container.id)

    def get_instance(self, instance_id: str) -> Instance | None:
        """The instance with this container id or name, or None if it is gone."""
        try:
            attrs = self._inspections.get(instance_id)
        except _DOCKER_ERRORS as exc:
            raise BackendError(
                f"inspecting container {instance_id} failed: {_explain(exc)}"
            ) from exc
        return None if attrs is None else _to_instance(attrs)

    def _inspect_all(self, labels: list[str]) -> list[dict[str, Any]]:
        """The inspects of the slipway containers with these labels (``key=value``),
        from what ``Inspections`` keeps."""
        wanted = [label.partition("=") for label in labels]
        try:
            every = self._inspections.all()
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"listing containers failed: {_explain(exc)}") from exc
        return [
            attrs
            for attrs in every
            if all((attrs["Config"].get("Labels") or {}).get(k) == v for k, _, v in wanted)
        ]

    def list_instances(self, service_id: str | None = None) -> list[Instance]:
        """All slipway containers (of one service), in any state, oldest name first."""
        labels = [f"{LABEL_MANAGED}=true"]
        if service_id is not None:
            labels.append(f"{LABEL_SERVICE_ID}={service_id}")
        # A kept inspect is the same object from one listing to the next: an idle host's
        # instances are made once, not at each of the reconcile pass's listings.
        listed: dict[str, tuple[dict[str, Any], Instance]] = {}
        for attrs in self._inspect_all(labels):
            kept = self._converted.get(attrs["Id"])
            listed[attrs["Id"]] = (
                kept if kept and kept[0] is attrs else (attrs, _to_instance(attrs))
            )
        if service_id is None:  # the whole listing: what is not in it is gone
            self._converted = listed
        else:
            self._converted.update(listed)
        return sorted((inst for _, inst in listed.values()), key=lambda i: i.name)

    def stop_instance(self, instance_id: str, timeout: int = 10) -> None:
        """SIGTERM, SIGKILL after ``timeout`` seconds, then remove; a missing one is fine."""
        try:
            container = self.client.containers.get(instance_id)
            try:
                container.stop(timeout=timeout)
                container.remove(v=True, force=True)
            finally:
                self._inspections.changed(container.id)
            self._release_network(container.labels.get(LABEL_SERVICE_ID))
            if self.networks and len(container.attrs["NetworkSettings"]["Networks"]) > 1:
                self.networks.refresh_fence()  # its addresses on joined networks are free
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code == 409 and "already in progress" in _explain(exc):
                return
            raise BackendError(f"stopping container {instance_id} failed: {_explain(exc)}") from exc
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"stopping container {instance_id} failed: {_explain(exc)}") from exc

    def _release_network(self, service_id: str | None) -> None:
        """A service's network goes with its last container (deleted, paused or failed;
        made again at its next start); under the lock that creates containers."""
        if self.networks is None or not service_id:
            return
        with self._allocating:
            if not self._inspect_all([f"{LABEL_SERVICE_ID}={service_id}"]):
                self.networks.release_service(service_id)

    def remove_image(self, image: str) -> None:
        """Delete a local image; one still in use or already gone is left alone."""
        try:
            self.client.images.remove(image)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                return
            raise BackendError(f"removing image {image} failed: {_explain(exc)}") from exc
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"removing image {image} failed: {_explain(exc)}") from exc

    def logs(self, instance_id: str, tail: int = 50) -> str:
        """The last ``tail`` lines of stdout and stderr."""
        try:
            raw = self.client.containers.get(instance_id).logs(tail=tail)
        except docker.errors.NotFound as exc:
            raise BackendError(f"container {instance_id} not found") from exc
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"reading logs of {instance_id} failed: {_explain(exc)}") from exc
        return raw.decode("utf-8", errors="replace")

    def follow_logs(self, instance_id: str, since_ns: int) -> LogStream | None:
        """The container's stdout and stderr records from ``since_ns`` on, followed while
        it runs (``docker_logs.py`` says why it reads the stream itself)."""
        return self._logs.follow(instance_id, since_ns)

    def instance_stats(self, instance_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """One stats sample per container (id or name); containers that are gone are
        left out. Read from the container's cgroup files where this host shows them
        (``docker_cgroups.py`` says why), else from Docker's stats API."""
        ids = list(instance_ids)
        if not ids:
            return {}
        mains = {}  # id or name -> (id, main process)
        for attrs in self._inspect_all([f"{LABEL_MANAGED}=true"]):
            main = (attrs["Id"], (attrs.get("State") or {}).get("Pid") or 0)
            mains[attrs["Id"]] = mains[attrs["Name"].lstrip("/")] = main
        samples = self._cgroups.sample_many({i: mains[i] for i in ids if i in mains})
        samples.update(self._api_stats([i for i in ids if i not in samples]))
        return samples

    def _api_stats(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Every stats call waits for the daemon's 1 s collection tick. On Docker
        20.10.24 (API 1.41): ``stream=False`` takes ~1.7 s per container (two ticks, to
        fill ``precpu_stats``), ``one-shot=true`` ~1.0 s (one tick), the first item of
        ``stream=True`` ~1.0 s. Concurrent calls share a tick, so one-shot calls in
        parallel return 10 containers in ~1.0 s, costing this process ~12 ms of CPU."""
        if not ids:
            return {}
        api = self.client.api
        one_shot = version_gte(api.api_version, "1.41") or None

        def fetch(container_id: str) -> dict[str, Any] | None:
            try:
                return api.stats(container_id, stream=False, one_shot=one_shot)
            # Gone, or going while it answered (a cut body): no sample, the others stand.
            except (docker.errors.NotFound, requests.exceptions.JSONDecodeError):
                return None

        try:
            with ThreadPoolExecutor(min(STATS_WORKERS, len(ids))) as pool:
                results = list(pool.map(fetch, ids))
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"docker stats failed: {_explain(exc)}") from exc
        # A container that stopped answers with empty stats.
        return {i: s for i, s in zip(ids, results, strict=True) if s and s.get("memory_stats")}

    def cpu_limits(self, instance_ids: Iterable[str]) -> dict[str, float | None]:
        """Cores each container may use (``NanoCpus``, or ``CpuQuota``/``CpuPeriod``); None
        for no limit. A limit does not change while a container lives, so callers cache
        this."""
        limits: dict[str, float | None] = {}
        for container_id in instance_ids:
            try:
                attrs = self._inspections.get(container_id)  # kept: usually no docker call
            except _DOCKER_ERRORS as exc:
                raise BackendError(
                    f"docker inspect {container_id} failed: {_explain(exc)}"
                ) from exc
            if attrs is None:
                continue
            host = attrs.get("HostConfig") or {}
            if host.get("NanoCpus"):
                limits[container_id] = host["NanoCpus"] / 1e9
            elif host.get("CpuQuota", 0) > 0:
                limits[container_id] = host["CpuQuota"] / (host.get("CpuPeriod") or 100_000)
            else:
                limits[container_id] = None
        return limits
