"""The networks VPC connectors name, over a fake Docker API: which can be joined, the
join itself, and the instances' addresses there that the fence holds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from slipway.backends.docker_vpc import VpcNetworks, bridge_of, problem
from slipway.backends.fence import Isolation
from slipway.errors import BackendError

DB_NET = {"Id": "d" * 64, "Name": "db-net", "Driver": "bridge", "Labels": {}, "Options": {}}
OURS = {
    "Id": "e" * 64,
    "Name": "slipway-svc-1",
    "Driver": "bridge",
    "Labels": {"slipway.managed": "true"},
    "Options": {"com.docker.network.bridge.name": "slw-0123456789a"},
}


class Api:
    def __init__(self) -> None:
        self.held = {n["Name"]: n for n in (DB_NET, OURS)}
        self.held["bridge"] = {"Id": "b" * 64, "Name": "bridge", "Driver": "bridge"}
        self.held["host"] = {"Id": "h" * 64, "Name": "host", "Driver": "host"}
        self.connected: list[tuple[str, str]] = []
        self.boxes: list[dict[str, Any]] = []

    def inspect_network(self, name: str) -> dict[str, Any]:
        if name not in self.held:
            raise docker.errors.NotFound(f"network {name} not found")
        return self.held[name]

    def networks(self, filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        return list(self.held.values())

    def connect_container_to_network(self, container: str, net: str) -> None:
        if net not in self.held:
            raise docker.errors.APIError(f"network {net} not found")
        self.connected.append((container, net))

    def containers(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        return self.boxes


class Fence:
    def __init__(self) -> None:
        self.installed: list[tuple[list[str], list[tuple[str, str]]]] = []

    def install(self, bridges: list[str], members: list[tuple[str, str]] = ()) -> None:
        self.installed.append((sorted(bridges), sorted(members)))


def vpc_networks(api: Api) -> tuple[VpcNetworks, Fence]:
    fence = Fence()
    return VpcNetworks(Isolation(), SimpleNamespace(api=api), fence), fence  # type: ignore[arg-type]


def test_only_user_defined_bridges_can_be_joined() -> None:
    networks, _ = vpc_networks(Api())
    assert networks.problems(["db-net", "nope", "slipway-svc-1", "bridge", "host"]) == {
        "nope": "does not exist on this host",
        "slipway-svc-1": "is one of slipway's own networks",
        "bridge": "is Docker's default bridge, shared by every container; name a user-defined one",
        "host": "is a host network; only bridge networks can be joined",
    }
    assert problem(DB_NET) is None
    assert bridge_of(DB_NET) == "br-dddddddddddd"
    assert bridge_of(OURS) == "slw-0123456789a"


def test_join_connects_and_a_failure_names_the_network() -> None:
    api = Api()
    networks, _ = vpc_networks(api)
    networks.join("c1", ["db-net"])
    assert api.connected == [("c1", "db-net")]
    with pytest.raises(BackendError, match="joining network gone-net failed"):
        networks.join("c1", ["gone-net"])


def test_the_fence_holds_each_instance_address_on_a_joined_network() -> None:
    api = Api()
    api.boxes = [
        {
            "NetworkSettings": {
                "Networks": {
                    "slipway-svc-1": {"NetworkID": OURS["Id"], "IPAddress": "172.28.1.2"},
                    "db-net": {"NetworkID": DB_NET["Id"], "IPAddress": "172.30.0.3"},
                }
            }
        }
    ]
    networks, fence = vpc_networks(api)
    networks.refresh_fence()
    # slipway's own network is fenced by its bridge; the joined one by the address.
    assert fence.installed == [(["slw-0123456789a"], [("br-dddddddddddd", "172.30.0.3")])]
