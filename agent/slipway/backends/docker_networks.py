"""A Docker bridge network per service, and one for builds, behind the host fence.

A service's instances join ``slipway-svc-<service id>``: Docker keeps two bridges apart,
so an instance reaches no other service's instance, by address or by name (Docker's DNS
answers only inside one network). Caddy is unaffected: it reaches instances through
their published loopback ports, as before. Builds run on ``slipway-build``.

Each network is a /24 of ``network_pool`` picked here, not by Docker: its default
pools hold some 30 networks, fewer than a busy host's services. Its bridge is named
``slw-<hash>`` so the fence (``fence.py``) enters from every slipway bridge with one
rule. A network found already there (another agent, an earlier run) is adopted; a
service's network goes with its last container (``DockerEngine`` decides when).
"""

from __future__ import annotations

import hashlib
import ipaddress
import shutil
import threading
from collections.abc import Iterable
from typing import Any

import docker
import docker.errors
import requests
from docker.types import IPAMConfig, IPAMPool

from ..errors import BackendError
from . import LABEL_MANAGED, LABEL_SERVICE_ID
from .fence import BRIDGE_PREFIX, HostFence, Isolation

BUILD_NETWORK = "slipway-build"
LABEL_NETWORK = "slipway.network"  # "service" or "build"
BRIDGE_OPTION = "com.docker.network.bridge.name"
CREATE_ATTEMPTS = 10  # another agent may take the same free subnet meanwhile

_DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)


def network_name(service_id: str) -> str:
    return f"slipway-svc-{service_id}"


def bridge_name(network: str) -> str:
    """``slw-`` and 11 hex digits of the network's name: Linux allows 15 characters."""
    return BRIDGE_PREFIX + hashlib.sha256(network.encode()).hexdigest()[:11]


def free_subnet(
    candidates: Iterable[ipaddress.IPv4Network], taken: Iterable[str], name: str = ""
) -> ipaddress.IPv4Network | None:
    """A candidate that overlaps none of the subnets docker networks hold: the first
    free one from a place that ``name`` picks, so that networks made at once (many
    services created together, agents side by side) seldom reach for the same one."""
    held = []
    for subnet in taken:
        try:
            held.append(ipaddress.ip_network(subnet, strict=False))
        except ValueError:
            continue
    pool = list(candidates)
    start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(pool) if name and pool else 0
    ordered = pool[start:] + pool[:start]
    return next((c for c in ordered if not any(c.overlaps(h) for h in held)), None)


def _explain(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc)


class Networks:
    """slipway's Docker networks and the fence over them; every method is safe to repeat."""

    def __init__(
        self,
        isolation: Isolation,
        client: docker.DockerClient | None = None,
        fence: HostFence | None = None,
    ) -> None:
        isolation.check()
        self.isolation = isolation
        self.fence = fence
        # With fence: false, still the means to take down a fence an earlier start put up.
        if fence is None and (isolation.fence or shutil.which("iptables")):
            self.fence = HostFence(isolation.ports())
        self._client = client
        self._lock = threading.Lock()
        self._kept: set[str] = set()  # services whose network outlives their containers

    @property
    def client(self) -> docker.DockerClient:
        # Made on first use, like the builds' client: from_env() asks the daemon.
        if self._client is None:
            try:
                self._client = docker.from_env()
            except _DOCKER_ERRORS as exc:
                raise BackendError(f"cannot reach the docker daemon: {_explain(exc)}") from exc
        return self._client

    def prepare(self) -> None:
        """At agent start: the build network, and the fence over every slipway network
        (or, with ``fence: false``, a fence an earlier start installed taken down)."""
        self.for_builds()
        self.refresh_fence()
        if self.fence is not None and not self.isolation.fence:
            self.fence.lift()

    def for_builds(self) -> str:
        """The build network's name, made if missing (asked before every build)."""
        return self.ensure(BUILD_NETWORK, "build")

    def for_service(self, service_id: str) -> str:
        """The name of the service's network, made if missing."""
        return self.ensure(network_name(service_id), "service", {LABEL_SERVICE_ID: service_id})

    def keep_service(self, service_id: str, keep: bool) -> None:
        """Keep the service's network while it has no container (scaled to zero: making
        a network and a bridge again would be most of its wake), or stop keeping it."""
        with self._lock:
            if keep:
                self._kept.add(service_id)
            else:
                self._kept.discard(service_id)

    def release_service(self, service_id: str) -> None:
        """Remove the service's network unless a container is still attached to it or
        it is kept."""
        name = network_name(service_id)
        with self._lock:
            if service_id in self._kept:
                return
        try:
            self.client.api.remove_network(name)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if "active endpoints" in _explain(exc):
                return
            raise BackendError(f"removing network {name} failed: {_explain(exc)}") from exc
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"removing network {name} failed: {_explain(exc)}") from exc

    def ensure(self, name: str, kind: str, labels: dict[str, str] | None = None) -> str:
        """The network ``name``: adopted if it exists, else made on a free /24 of the
        pool, and then the fence refreshed to let its members reach each other."""
        with self._lock:
            try:
                self.client.api.inspect_network(name)
                return name
            except docker.errors.NotFound:
                pass
            except _DOCKER_ERRORS as exc:
                raise BackendError(f"inspecting network {name} failed: {_explain(exc)}") from exc
            for attempt in range(1, CREATE_ATTEMPTS + 1):
                if self._create(name, kind, labels or {}, last=attempt == CREATE_ATTEMPTS):
                    break
        self.refresh_fence()
        return name

    def _create(self, name: str, kind: str, labels: dict[str, str], last: bool) -> bool:
        subnet = free_subnet(self.isolation.subnets(), self._taken(), name)
        if subnet is None:
            raise BackendError(
                f"network_pool {self.isolation.pool} has no free /24 left for network {name}"
            )
        try:
            self.client.api.create_network(
                name,
                driver="bridge",
                options={BRIDGE_OPTION: bridge_name(name)},
                ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))]),
                labels={**labels, LABEL_MANAGED: "true", LABEL_NETWORK: kind},
                check_duplicate=True,
            )
        except docker.errors.APIError as exc:
            message = _explain(exc)
            if exc.status_code == 409 or "already exists" in message:
                return True  # another agent made it meanwhile: adopted
            if "overlaps" in message and not last:
                return False  # another agent took that subnet meanwhile: the next one
            raise BackendError(f"creating network {name} failed: {message}") from exc
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"creating network {name} failed: {_explain(exc)}") from exc
        return True

    def _taken(self) -> list[str]:
        """The subnets every docker network of this host holds."""
        try:
            every = self.client.api.networks()
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"listing networks failed: {_explain(exc)}") from exc
        return [c["Subnet"] for n in every for c in _ipam(n) if c.get("Subnet")]

    def bridges(self) -> list[str]:
        """The bridges of every slipway network on this host, whichever agent made it."""
        try:
            ours = self.client.api.networks(filters={"label": f"{LABEL_MANAGED}=true"})
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"listing networks failed: {_explain(exc)}") from exc
        options = [n.get("Options") or {} for n in ours]
        return [o[BRIDGE_OPTION] for o in options if BRIDGE_OPTION in o]

    def refresh_fence(self) -> None:
        if self.fence is not None and self.isolation.fence:
            self.fence.install(self.bridges())


def _ipam(network: dict[str, Any]) -> list[dict[str, Any]]:
    return (network.get("IPAM") or {}).get("Config") or []
