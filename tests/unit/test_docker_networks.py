"""Service and build networks: names, subnets, adoption and removal, against a fake of
docker's low-level network calls."""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest

from slipway.backends.docker_networks import (
    BRIDGE_OPTION,
    BUILD_NETWORK,
    CREATE_ATTEMPTS,
    Networks,
    bridge_name,
    free_subnet,
    network_name,
)
from slipway.backends.fence import Isolation
from slipway.errors import BackendError, InvalidRequest


def test_names() -> None:
    assert network_name("4f1c9a") == "slipway-svc-4f1c9a"
    bridge = bridge_name("slipway-svc-4f1c9a")
    assert bridge.startswith("slw-") and len(bridge) == 15  # Linux's limit for a name
    assert bridge == bridge_name("slipway-svc-4f1c9a") != bridge_name("slipway-svc-4f1c9b")


def test_free_subnet_skips_every_held_one() -> None:
    pool = list(ipaddress.IPv4Network("172.28.0.0/22").subnets(new_prefix=24))
    assert str(free_subnet(pool, [])) == "172.28.0.0/24"
    held = ["172.28.0.0/24", "172.28.1.128/25", "fd00::/64", "garbage"]
    assert str(free_subnet(pool, held)) == "172.28.2.0/24"
    assert free_subnet(pool, ["172.28.0.0/16"]) is None  # one network over the whole pool


def test_networks_made_at_once_reach_for_different_subnets() -> None:
    pool = list(ipaddress.IPv4Network("172.28.0.0/16").subnets(new_prefix=24))
    picked = {free_subnet(pool, [], network_name(f"svc{i}")) for i in range(20)}
    assert len(picked) >= 18  # a name picks where its search starts
    first = free_subnet(pool, [], "slipway-svc-a")
    assert free_subnet(pool, [str(first)], "slipway-svc-a") != first  # and it skips held ones


def home_subnet(name: str) -> ipaddress.IPv4Network:
    """Where a network of this name lands in the default pool when nothing is held."""
    subnet = free_subnet(Isolation().subnets(), [], name)
    assert subnet is not None
    return subnet


class FakeFence:
    def __init__(self) -> None:
        self.installed: list[list[str]] = []
        self.lifted = 0

    def install(self, bridges: list[str]) -> None:
        self.installed.append(sorted(bridges))

    def lift(self) -> None:
        self.lifted += 1


class FakeApi:
    """docker's network calls over a dict of networks; ``race`` makes the next create
    fail as if another agent had just taken its subnet."""

    def __init__(self) -> None:
        self.held: dict[str, dict[str, Any]] = {
            "bridge": {"Name": "bridge", "IPAM": {"Config": [{"Subnet": "172.17.0.0/16"}]}},
        }
        self.attached: set[str] = set()
        self.race = 0

    def inspect_network(self, name: str) -> dict[str, Any]:
        if name not in self.held:
            raise docker.errors.NotFound(f"network {name} not found")
        return self.held[name]

    def create_network(self, name: str, **kwargs: Any) -> None:
        subnet = kwargs["ipam"]["Config"][0]["Subnet"]
        if self.race:
            self.race -= 1
            self.held[f"other-{subnet}"] = {"IPAM": {"Config": [{"Subnet": subnet}]}}
            raise docker.errors.APIError("Pool overlaps with other one on this address space")
        self.held[name] = {
            "Name": name,
            "Labels": kwargs["labels"],
            "Options": kwargs["options"],
            "IPAM": {"Config": [{"Subnet": subnet}]},
        }

    def remove_network(self, name: str) -> None:
        if name not in self.held:
            raise docker.errors.NotFound(f"network {name} not found")
        if name in self.attached:
            raise docker.errors.APIError(
                f"error while removing network: {name} has active endpoints"
            )
        del self.held[name]

    def networks(self, filters: dict[str, str] | None = None) -> list[dict[str, Any]]:
        every = list(self.held.values())
        if filters:
            key, _, value = filters["label"].partition("=")
            every = [n for n in every if (n.get("Labels") or {}).get(key) == value]
        return every


def networks_on(
    api: FakeApi, pool: str = "172.28.0.0/16", fenced: bool = True
) -> tuple[Networks, FakeFence]:
    fence = FakeFence()
    client = SimpleNamespace(api=api)
    isolation = Isolation(pool=pool, fence=fenced)
    return Networks(isolation, client, fence), fence  # type: ignore[arg-type]


def test_a_service_network_is_made_once_on_a_free_24_and_the_fence_follows() -> None:
    api = FakeApi()
    networks, fence = networks_on(api)
    assert networks.for_service("abc") == "slipway-svc-abc"
    made = api.held["slipway-svc-abc"]
    assert made["IPAM"]["Config"][0]["Subnet"] == str(home_subnet("slipway-svc-abc"))
    assert made["Options"] == {BRIDGE_OPTION: bridge_name("slipway-svc-abc")}
    assert made["Labels"] == {
        "slipway.service-id": "abc",
        "slipway.managed": "true",
        "slipway.network": "service",
    }
    assert fence.installed == [[bridge_name("slipway-svc-abc")]]
    networks.for_service("abc")  # there already: adopted, nothing made, no refresh
    assert fence.installed == [[bridge_name("slipway-svc-abc")]]
    networks.for_service("def")
    assert api.held["slipway-svc-def"]["IPAM"]["Config"][0]["Subnet"] == str(
        home_subnet("slipway-svc-def")
    )
    assert fence.installed[-1] == sorted(map(bridge_name, ["slipway-svc-abc", "slipway-svc-def"]))


def test_prepare_makes_the_build_network_and_installs_the_fence_over_all() -> None:
    api = FakeApi()
    networks, fence = networks_on(api)
    networks.for_service("abc")
    networks.prepare()
    assert api.held[BUILD_NETWORK]["Labels"]["slipway.network"] == "build"
    every = sorted(map(bridge_name, ["slipway-svc-abc", BUILD_NETWORK]))
    assert fence.installed[-1] == every
    networks.prepare()  # again at the next start: the same, refreshed
    assert fence.installed[-1] == every and len(api.held) == 3


def test_without_the_fence_a_fence_put_up_before_is_taken_down() -> None:
    api = FakeApi()
    networks, fence = networks_on(api, fenced=False)
    networks.for_service("abc")
    networks.prepare()
    assert (fence.installed, fence.lifted) == ([], 1)
    assert BUILD_NETWORK in api.held  # the networks are made all the same


def test_a_subnet_taken_meanwhile_by_another_agent_moves_to_the_next() -> None:
    api = FakeApi()
    api.race = 1
    networks, _ = networks_on(api)
    networks.for_service("abc")
    moved = home_subnet("slipway-svc-abc").network_address + 256  # the next /24
    assert api.held["slipway-svc-abc"]["IPAM"]["Config"][0]["Subnet"] == f"{moved}/24"
    api.race = CREATE_ATTEMPTS
    with pytest.raises(BackendError, match="creating network slipway-svc-def failed: Pool"):
        networks.for_service("def")


def test_a_full_pool_says_which_setting() -> None:
    api = FakeApi()
    networks, _ = networks_on(api, pool="10.5.0.0/24")
    networks.for_service("abc")
    with pytest.raises(BackendError, match="network_pool 10.5.0.0/24 has no free /24"):
        networks.for_service("def")


def test_release_removes_the_network_unless_a_container_is_still_on_it() -> None:
    api = FakeApi()
    networks, _ = networks_on(api)
    networks.for_service("abc")
    api.attached.add("slipway-svc-abc")
    networks.release_service("abc")
    assert "slipway-svc-abc" in api.held
    api.attached.clear()
    networks.release_service("abc")
    assert "slipway-svc-abc" not in api.held
    networks.release_service("abc")  # gone already: fine


def test_nonsense_settings_refuse_the_networks() -> None:
    with pytest.raises(InvalidRequest, match="network_pool"):
        Networks(Isolation(pool="300.1.0.0/16"), SimpleNamespace(), FakeFence())  # type: ignore[arg-type]


class EngineApi:
    """The container listing the engine's release decision reads."""

    def __init__(self, labels: list[dict[str, str]]) -> None:
        self.labels = labels

    def containers(self, **kwargs: Any) -> list[dict[str, str]]:
        return [{"Id": str(i)} for i in range(len(self.labels))]

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return {"Id": container_id, "Config": {"Labels": self.labels[int(container_id)]}}


def test_the_engine_releases_a_service_network_with_its_last_container() -> None:
    from slipway.backends.docker_engine import DockerEngine

    released: list[str] = []
    networks = SimpleNamespace(release_service=released.append)
    api = EngineApi([{"slipway.managed": "true", "slipway.service-id": "abc"}])
    engine = DockerEngine(SimpleNamespace(api=api), networks=networks)  # type: ignore[arg-type]
    engine._inspections._thread = threading.Thread()  # no event stream: fresh looks
    engine._release_network("abc")  # one of abc's containers is left
    assert released == []
    api.labels = [{"slipway.managed": "true", "slipway.service-id": "other"}]
    engine._release_network("abc")
    assert released == ["abc"]


def test_builds_run_on_the_network_they_are_given(tmp_path: Path) -> None:
    from slipway.builds.builder import Builder

    asked: list[dict[str, Any]] = []
    api = SimpleNamespace(
        hooks={},
        _proxy_configs=SimpleNamespace(get_environment=dict),
        _set_auth_headers=lambda headers: None,
        _url=lambda path: path,
        _post=lambda url, **kwargs: asked.append(kwargs),
        _stream_helper=lambda response, decode: iter(()),
    )
    builder = Builder(client=SimpleNamespace(api=api), runtimes={}, network=lambda: BUILD_NETWORK)  # type: ignore[arg-type]
    (tmp_path / "D").write_text("FROM scratch\n")
    build = builder.docker.start(
        path=str(tmp_path), dockerfile="D", tag="t", buildargs={}, nocache=False
    )
    assert build.events.get(timeout=5) == ("end", None)
    assert asked[0]["params"]["networkmode"] == BUILD_NETWORK
