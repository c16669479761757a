"""The host fence on Swarm nodes: the rules of a node (the single host's builder, entered
from docker_gwbridge), its task's scripts, and what /healthz says of a node without it."""

from __future__ import annotations

import subprocess

from slipway.backends.fence import (
    FORWARD_CHAIN,
    HOST_CHAIN,
    VPC_FORWARD_CHAIN,
    Isolation,
    forward_rules,
    jumps,
    restore_input,
)
from slipway.backends.fence_node import GATEWAY_BRIDGE, install_script, lift_script, node_rules
from slipway.backends.swarm_fence import LABEL_SPEC, SERVICE, NodeFence, node_addresses, unfenced
from slipway.backends.swarm_nodes import LABEL_FENCE, node_rows

REFUSE = ("-j", "REJECT", "--reject-with", "icmp-admin-prohibited")


def test_a_node_is_entered_from_docker_gwbridge_without_the_vpc_chains() -> None:
    assert jumps(GATEWAY_BRIDGE, vpc=False) == [
        ("INPUT", ("-i", "docker_gwbridge", "-j", HOST_CHAIN)),
        ("DOCKER-USER", ("-i", "docker_gwbridge", "-j", FORWARD_CHAIN)),
    ]


def test_every_node_address_is_held_to_the_host_s_ports_and_other_tasks_are_refused() -> None:
    rules = forward_rules((), ["10.0.0.12", "10.0.0.11", "10.0.0.12"], others=GATEWAY_BRIDGE)
    assert rules[1:] == [
        ("-d", "169.254.0.0/16", *REFUSE),
        ("-m", "conntrack", "--ctstate", "DNAT", *REFUSE),  # a port published on this node
        ("-d", "10.0.0.11/32", "-j", HOST_CHAIN),  # ... or on another: its host chain
        ("-d", "10.0.0.12/32", "-j", HOST_CHAIN),
        ("-o", "docker_gwbridge", *REFUSE),  # another task by its gateway address
    ]
    # The single host's shape is what it was: no hosts, slipway's bridges.
    assert forward_rules(["slw-a"])[-1] == ("-o", "slw-+", *REFUSE)


def test_a_node_s_rules_are_the_single_host_s_restore_input() -> None:
    text = node_rules([80, 443], ["10.0.0.11"])
    assert text == restore_input(
        [80, 443], (), forward=forward_rules((), ["10.0.0.11"], others=GATEWAY_BRIDGE)
    )
    assert f"-A {FORWARD_CHAIN} -d 10.0.0.11/32 -j {HOST_CHAIN}" in text.splitlines()
    assert f"-A {HOST_CHAIN} -p tcp --dport 443 -j RETURN" in text.splitlines()
    assert "slw-" not in text and f":{VPC_FORWARD_CHAIN} - [0:0]" in text


def test_the_task_scripts_are_valid_shell_and_keep_or_lift_the_jumps() -> None:
    install, lift = install_script([80], ["10.0.0.11"]), lift_script()
    for script in (install, lift):
        assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0
    assert '"$IPT-restore" -w --noflush' in install
    assert "$IPT -w -I DOCKER-USER 1 -i docker_gwbridge -j SLIPWAY-FENCE" in install
    assert "while sleep 5; do" in install  # re-applied when Docker drops a jump
    assert "$IPT -w -D INPUT -i docker_gwbridge -j SLIPWAY-FENCE-HOST" in lift
    assert "-I " not in lift


def test_node_addresses_fall_back_to_the_manager_address() -> None:
    nodes = [
        {"Status": {"Addr": "10.0.0.12"}},
        {"Status": {"Addr": "0.0.0.0"}, "ManagerStatus": {"Addr": "10.0.0.11:2377"}},
        {"Status": {}},
    ]
    assert node_addresses(nodes) == ["10.0.0.11", "10.0.0.12"]


def node(node_id: str, state: str = "ready", availability: str = "active") -> dict:
    return {
        "ID": node_id,
        "Description": {"Hostname": f"host-{node_id}"},
        "Status": {"State": state},
        "Spec": {"Availability": availability},
    }


def fence_task(node_id: str, state: str, mode: str = "installed") -> dict:
    labels = {LABEL_FENCE: mode}
    return {
        "NodeID": node_id,
        "Status": {"State": state},
        "Spec": {"ContainerSpec": {"Labels": labels}},
    }


def test_health_names_each_ready_active_node_without_a_running_fence_task() -> None:
    nodes = [node("a"), node("b"), node("c"), node("d", state="down"), node("e", "ready", "drain")]
    tasks = [
        fence_task("a", "running"),
        {**fence_task("b", "failed"), "Status": {"State": "failed", "Err": "exit 4"}},
        fence_task("c", "running", "lifted"),  # fence: false
    ]
    assert unfenced(nodes, tasks) == [
        "no host fence on node host-b (exit 4)",
        "no host fence on node host-c (running)",
    ]
    # ``slipway nodes`` says the same per node.
    rows = {r["Name"]: r["Fence"] for r in node_rows(nodes, tasks, set())}
    assert rows == {
        "host-a": True,
        "host-b": False,
        "host-c": False,
        "host-d": False,
        "host-e": False,
    }


class FakeServices:
    def __init__(self) -> None:
        self.existing: list = []
        self.created: list[dict] = []

    def list(self, filters: dict) -> list:
        return self.existing

    def create(self, image: str, **spec) -> None:
        self.created.append({"image": image, **spec})
        self.existing = [FakeService(spec["labels"])]


class FakeService:
    name = SERVICE

    def __init__(self, labels: dict) -> None:
        self.attrs = {"Spec": {"Labels": labels}}
        self.removed = False

    def remove(self) -> None:
        self.removed = True


class FakeClient:
    def __init__(self) -> None:
        self.services = FakeServices()
        self.api = self

    def nodes(self) -> list:
        return [node("a") | {"Status": {"State": "ready", "Addr": "10.0.0.11"}}]

    def tasks(self, filters: dict) -> list:
        return [fence_task("a", "running")]


class FakeBuilds:
    def shareable(self, image: str) -> str:
        return f"127.0.0.1:5000/{image}"


def test_the_service_is_global_on_the_host_network_and_replaced_only_when_it_changes() -> None:
    client = FakeClient()
    fence = NodeFence(client, FakeBuilds(), Isolation(allow_ports=("3128",)))  # type: ignore[arg-type]
    fence._image = "127.0.0.1:5000/slipway/fence:x"  # built and pushed
    fence.ensure()
    fence.ensure()
    (created,) = client.services.created  # the same spec: left alone
    assert created["mode"].mode == "global" and created["networks"] == ["host"]
    assert created["cap_add"] == ["NET_ADMIN", "NET_RAW"]
    assert created["container_labels"] == {LABEL_FENCE: "installed"}
    assert "--dport 3128" in created["command"][2] and "10.0.0.11/32" in created["command"][2]
    first = client.services.existing[0]
    fence.isolation = Isolation(fence=False)
    fence.ensure()  # fence: false: the lift script replaces it
    assert first.removed and len(client.services.created) == 2
    assert "-D INPUT" in client.services.created[1]["command"][2]
    assert client.services.created[1]["labels"][LABEL_SPEC] != created["labels"][LABEL_SPEC]
