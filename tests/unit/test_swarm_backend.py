"""The Swarm backend's pure parts: a Swarm service and its tasks as an Instance, ports
handed out round-robin, its settings' checks, and the refusal of a daemon that is not
a manager (with canned ``docker info`` answers)."""

from __future__ import annotations

from typing import Any

import pytest

from slipway.backends import LABEL_DEPLOYMENT_ID, LABEL_REVISION, LABEL_SERVICE_ID
from slipway.backends.swarm import SwarmEngine
from slipway.backends.swarm_config import Cluster
from slipway.backends.swarm_images import BuildPusher, is_local_build
from slipway.backends.swarm_nodes import cluster_problems, node_rows
from slipway.backends.swarm_tasks import current_task, free_port, to_instance
from slipway.config import load_settings
from slipway.errors import BackendError, InvalidRequest

NODES = {
    "n1": {"ID": "n1", "Status": {"State": "ready", "Addr": "10.0.0.11"}},
    "n2": {"ID": "n2", "Status": {"State": "down", "Addr": "10.0.0.12"}},
}
SERVICE = {
    "ID": "svc-x",
    "Spec": {
        "Name": "slipway-web-abcdef12-0",
        "Labels": {LABEL_SERVICE_ID: "s1", LABEL_DEPLOYMENT_ID: "d1", LABEL_REVISION: "sha256:r"},
        "EndpointSpec": {"Ports": [{"TargetPort": 8080, "PublishedPort": 30007}]},
    },
}


def task(created: str, state: str, node: str = "n1", desired: str = "running", code=None) -> dict:
    status: dict[str, Any] = {"State": state, "Timestamp": created}
    if code is not None:
        status["ContainerStatus"] = {"ExitCode": code}
    return {"CreatedAt": created, "DesiredState": desired, "NodeID": node, "Status": status}


def test_a_running_task_on_a_ready_node_is_reached_at_the_node_and_published_port():
    inst = to_instance(SERVICE, [task("t1", "running")], NODES)
    assert (inst.id, inst.name, inst.service_id, inst.deployment_id, inst.revision) == (
        "svc-x",
        "slipway-web-abcdef12-0",
        "s1",
        "d1",
        "sha256:r",
    )
    assert inst.running and inst.address == "10.0.0.11:30007" and inst.restart_count == 0
    assert inst.started_at == "t1"


def test_a_task_on_a_lost_node_is_restarting_not_running():
    inst = to_instance(SERVICE, [task("t1", "running", node="n2")], NODES)
    assert inst.state == "restarting" and inst.address is None


def test_a_replacement_starting_after_a_crash_is_restarting_with_the_exit_code():
    tasks = [task("t1", "failed", desired="shutdown", code=3), task("t2", "starting")]
    inst = to_instance(SERVICE, tasks, NODES)
    assert (inst.state, inst.restart_count, inst.exit_code) == ("restarting", 1, 3)
    assert current_task(tasks)["CreatedAt"] == "t2"


def test_a_new_instance_is_created_until_its_task_runs():
    assert to_instance(SERVICE, [], NODES).state == "created"
    assert to_instance(SERVICE, [task("t1", "pending")], NODES).state == "created"


def test_an_instance_scaled_to_none_is_exited():
    inst = to_instance(SERVICE, [task("t1", "shutdown", desired="shutdown", code=0)], NODES)
    assert (inst.state, inst.exit_code) == ("exited", 0)


def test_ports_are_handed_out_round_robin_and_skip_taken_ones():
    span = range(30000, 30004)
    assert free_port(set(), span) == 30000
    assert free_port({30001}, span, after=30000) == 30002
    assert free_port(set(), span, after=30003) == 30000  # wraps
    assert free_port(set(span), span) is None


@pytest.mark.parametrize(
    ("cluster", "named"),
    [
        (Cluster(backend="kubernetes"), "backend"),
        (Cluster(ports="30000"), "swarm_ports"),
        (Cluster(ports="80-90"), "swarm_ports"),
        (Cluster(ports="30000-30000"), "swarm_ports"),
        (Cluster(docker_host="/run/docker.sock"), "swarm_docker_host"),
        (Cluster(constraints=("node.colour==blue",)), "swarm_constraints"),
    ],
)
def test_nonsense_settings_are_refused_by_name(cluster: Cluster, named: str):
    with pytest.raises(InvalidRequest, match=named):
        cluster.check()


def test_settings_reach_the_cluster_and_sane_ones_pass(tmp_path):
    settings = load_settings(
        tmp_path / "none.yaml",
        environ={
            "SLIPWAY_BACKEND": "swarm",
            "SLIPWAY_SWARM_CONSTRAINTS": "node.role==worker,node.labels.zone!=b",
        },
    )
    cluster = settings.cluster
    assert cluster.backend == "swarm"
    assert cluster.constraints == ("node.role==worker", "node.labels.zone!=b")
    cluster.check()
    assert Cluster().backend == "docker"  # one host stays the default


class _Daemon:
    """A docker client whose ``info()`` is canned."""

    def __init__(self, swarm: dict[str, Any]) -> None:
        self._swarm = swarm

    def info(self) -> dict[str, Any]:
        return {"Swarm": self._swarm}


@pytest.mark.parametrize(
    ("swarm", "said"),
    [
        ({"LocalNodeState": "inactive"}, "not in a swarm"),
        ({"LocalNodeState": "active", "ControlAvailable": False}, "a worker"),
    ],
)
def test_a_daemon_that_is_not_a_manager_is_refused_with_the_fix(swarm, said):
    with pytest.raises(BackendError) as caught:
        SwarmEngine(Cluster(backend="swarm"), client=_Daemon(swarm))
    assert said in caught.value.message and "docker swarm init" in caught.value.message


def test_a_manager_is_accepted():
    SwarmEngine(
        Cluster(backend="swarm"),
        client=_Daemon({"LocalNodeState": "active", "ControlAvailable": True}),
    )


@pytest.mark.parametrize(
    ("image", "local"),
    [
        ("slipway/web:abc1234", True),  # a build: only the daemon that made it has it
        ("127.0.0.1:5000/examples/hello@sha256:" + "a" * 64, False),
        ("registry.example.com/team/app:v1", False),
        ("slipway/web@sha256:" + "b" * 64, False),
    ],
)
def test_only_local_builds_are_pushed_for_the_nodes(image, local):
    assert is_local_build(image) is local


def test_a_build_without_a_registry_for_the_nodes_is_refused_saying_which_setting():
    with pytest.raises(BackendError, match="swarm_registry"):
        BuildPusher("").shareable("slipway/web:abc1234")
    assert BuildPusher("").shareable("127.0.0.1:5000/x@sha256:" + "c" * 64).startswith("127.")
    with pytest.raises(InvalidRequest, match="swarm_registry"):
        Cluster(registry="http://127.0.0.1:5000").check()


def test_the_cluster_view_sums_reservations_and_instances_per_node():
    nodes = [
        {
            "ID": "n1",
            "Description": {
                "Hostname": "b",
                "Resources": {"NanoCPUs": 2 * 10**9, "MemoryBytes": 4 << 30},
            },
            "Spec": {"Role": "manager", "Availability": "active"},
            "ManagerStatus": {"Leader": True},
            "Status": {"State": "ready", "Addr": "10.0.0.11"},
        },
        {"ID": "n2", "Description": {"Hostname": "a"}, "Spec": {"Role": "worker"}},
    ]
    half = {"Resources": {"Reservations": {"NanoCPUs": 5 * 10**8, "MemoryBytes": 256 << 20}}}
    tasks = [
        {"NodeID": "n1", "DesiredState": "running", "ServiceID": "mine", "Spec": half},
        {"NodeID": "n1", "DesiredState": "running", "ServiceID": "other", "Spec": half},
        {"NodeID": "n1", "DesiredState": "shutdown", "ServiceID": "mine", "Spec": half},
    ]
    a, b = node_rows(nodes, tasks, {"mine"})
    assert (a["Name"], a["Instances"], a["CpuReserved"], a["CpuTotal"]) == ("a", 0, 0, 0)
    assert (b["Role"], b["Leader"], b["State"], b["Availability"]) == (
        "manager",
        True,
        "ready",
        "active",
    )
    assert (b["CpuReserved"], b["CpuTotal"], b["MemoryReservedMb"], b["MemoryTotalMb"]) == (
        1024,
        2048,
        512,
        4096,
    )
    assert b["Instances"] == 1


def test_lost_nodes_and_quorum_are_named_for_healthz():
    def node(name, state="ready", reach=None):
        found = {"Description": {"Hostname": name}, "Status": {"State": state, "Addr": "10.0.0.1"}}
        if reach:
            found["ManagerStatus"] = {"Reachability": reach}
        return found

    assert cluster_problems([node("m1", reach="reachable"), node("w1")]) == []
    assert cluster_problems([node("m1", reach="reachable"), node("w1", "down")]) == [
        "swarm node w1 (10.0.0.1) is down"
    ]
    lost = cluster_problems(
        [
            node("m1", reach="reachable"),
            node("m2", "down", "unreachable"),
            node("m3", "down", "unreachable"),
        ]
    )
    assert "swarm manager m2 is unreachable" in lost
    assert lost[-1] == "swarm quorum lost: 1 of 3 managers reachable"


class _LoggingDaemon(_Daemon):
    """A manager whose logins are recorded."""

    def __init__(self) -> None:
        super().__init__({"LocalNodeState": "active", "ControlAvailable": True})
        self.logins: list[tuple[str, str, str]] = []

    def login(self, username: str, password: str, registry: str) -> None:
        self.logins.append((username, password, registry))


def test_stored_registry_credentials_go_with_each_instance_s_service():
    daemon = _LoggingDaemon()
    stored = {"127.0.0.1:5001": ("deployer", "secret")}
    engine = SwarmEngine(Cluster(backend="swarm"), client=daemon, registry_auth=stored.get)
    engine._login("127.0.0.1:5001/team/app@sha256:" + "a" * 64)
    engine._login("127.0.0.1:5000/public/app:1")  # nothing stored: no login
    assert daemon.logins == [("deployer", "secret", "127.0.0.1:5001")]
