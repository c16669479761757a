"""The Docker networks VPC connectors name, joined by the instances of the services
that use them: a user-defined bridge where a database or a cache runs is what a VPC's
subnets are to App Runner. An instance joins them besides its own network
(``docker_networks.py``), before it starts, so its app finds them from its first
request, by address and by the containers' names.

Only user-defined bridges are joined: never one of slipway's own networks (that would
open another service's instances), nor Docker's default ``bridge`` (shared by every
container the host runs), ``host`` or ``none``. Joined networks are outside the fence's
bridges, so each instance's address on one is fenced by itself (``fence.vpc_rules``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import docker
import docker.errors

from ..errors import BackendError
from . import LABEL_MANAGED
from .docker_networks import _DOCKER_ERRORS, BRIDGE_OPTION, Networks, _explain
from .fence import Member

DEFAULT_BRIDGE = "bridge"


def bridge_of(network: dict[str, Any]) -> str:
    """The Linux bridge of a bridge network: its name option, else Docker's own."""
    return (network.get("Options") or {}).get(BRIDGE_OPTION) or f"br-{network['Id'][:12]}"


def problem(network: dict[str, Any] | None) -> str | None:
    """Why an instance may not join ``network`` (its inspection; None: absent)."""
    if network is None:
        return "does not exist on this host"
    if (network.get("Labels") or {}).get(LABEL_MANAGED) == "true":
        return "is one of slipway's own networks"
    if network.get("Name") == DEFAULT_BRIDGE:
        return "is Docker's default bridge, shared by every container; name a user-defined one"
    if network.get("Driver") != "bridge":
        return f"is a {network.get('Driver')} network; only bridge networks can be joined"
    return None


class VpcNetworks(Networks):
    """slipway's networks, and the VPC connectors' ones its instances join."""

    def _inspect(self, name: str) -> dict[str, Any] | None:
        try:
            return self.client.api.inspect_network(name)
        except docker.errors.NotFound:
            return None
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"inspecting network {name} failed: {_explain(exc)}") from exc

    def problems(self, names: list[str]) -> dict[str, str]:
        """{name: why it cannot be joined} for each of ``names`` that cannot."""
        found = {name: problem(self._inspect(name)) for name in names}
        return {name: why for name, why in found.items() if why}

    def join(self, container_id: str, names: Iterable[str]) -> None:
        """Connect a created container to ``names``. Its addresses there exist once it
        runs: ``refresh_fence`` after its start fences them."""
        for name in names:
            try:
                self.client.api.connect_container_to_network(container_id, name)
            except docker.errors.APIError as exc:
                if "already exists" in _explain(exc):
                    continue  # joined before (an instance adopted again)
                raise BackendError(f"joining network {name} failed: {_explain(exc)}") from exc
            except _DOCKER_ERRORS as exc:
                raise BackendError(f"joining network {name} failed: {_explain(exc)}") from exc

    def members(self) -> list[Member]:
        """(bridge, address) of every slipway instance on a network not slipway's, as
        running containers report them (whichever agent started them)."""
        try:
            boxes = self.client.api.containers(filters={"label": f"{LABEL_MANAGED}=true"})
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"listing containers failed: {_explain(exc)}") from exc
        joined: dict[str, list[str]] = {}
        for box in boxes:
            networks = (box.get("NetworkSettings") or {}).get("Networks") or {}
            if len(networks) < 2:
                continue  # on its own network alone: fenced by its bridge
            for settings in networks.values():
                if settings.get("NetworkID") and settings.get("IPAddress"):
                    joined.setdefault(settings["NetworkID"], []).append(settings["IPAddress"])
        if not joined:
            return []
        try:
            every = {n["Id"]: n for n in self.client.api.networks()}
        except _DOCKER_ERRORS as exc:
            raise BackendError(f"listing networks failed: {_explain(exc)}") from exc
        out: list[Member] = []
        for network_id, addresses in joined.items():
            network = every.get(network_id)
            if network is None or problem(network) is not None:
                continue  # slipway's own (fenced by its bridge), or gone meanwhile
            out += [(bridge_of(network), address) for address in addresses]
        return out

    def refresh_fence(self) -> None:
        if self.fence is not None and self.isolation.fence:
            self.fence.install(self.bridges(), self.members())
