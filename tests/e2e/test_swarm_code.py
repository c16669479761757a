"""``backend: swarm`` with instances kept off the manager (``swarm_constraints``): a code
service from git is built on the agent's host, pushed to ``swarm_registry`` and runs on
a worker node; a service larger than any node fails, saying why, and leaves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.cluster import TestCluster, cluster  # noqa: F401 - the fixture, for this file
from testkit.gitserver import GitServer
from testkit.harness import code_source, image_source, wait_status

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    running: TestCluster = request.getfixturevalue("cluster")
    return {
        "backend": "swarm",
        "swarm_docker_host": running.manager_socket,
        # The second holds while no node carries the label (a test adds it to all).
        "swarm_constraints": "node.role==worker,node.labels.retired!=yes",
        "swarm_registry": request.getfixturevalue("registry").host,
        "build_timeout": 120,
    }


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


def test_a_code_service_runs_on_a_worker_node(agent, cluster, git):  # noqa: F811
    root = EXAMPLES / "python-hello"
    files = {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}
    git.create_repo("python-hello", files)
    client = agent.client()
    created = client.create_service(
        ServiceName="built", SourceConfiguration=code_source(git.url("python-hello"))
    )
    service_id = created["Service"]["ServiceId"]
    wait_status(client, created["Service"]["ServiceArn"], "RUNNING", timeout=300)
    assert agent.get("built").text.strip() == "Hello from python-hello"

    (service,) = cluster.services(service_id)
    image = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image.startswith(f"{agent.env['SLIPWAY_SWARM_REGISTRY']}/slipway/built@sha256:")
    names = cluster.node_names()
    nodes = {names[t["NodeID"]] for t in service.tasks(filters={"desired-state": "running"})}
    assert nodes and "slwc-n1" not in nodes  # not the manager


def test_a_service_larger_than_any_node_fails_naming_why(agent, cluster, hello_image):  # noqa: F811
    client = agent.client()
    created = client.create_service(
        ServiceName="huge",
        SourceConfiguration=image_source(hello_image),
        InstanceConfiguration={"Cpu": "4096", "Memory": "8192"},  # 4 vCPU: nodes have 2
    )
    wait_status(client, created["Service"]["ServiceArn"], "CREATE_FAILED")
    said = agent.cli("logs", "huge").stdout
    assert "no node can run instance" in said, said
    assert "more than any node has: the largest, slwc-n" in said  # a worker: n2 or n3
    assert cluster.services(created["Service"]["ServiceId"]) == []


def test_a_constraint_no_node_meets_fails_naming_it(agent, cluster, hello_image):  # noqa: F811
    nodes = cluster.manager.nodes.list()
    for node in nodes:
        spec = node.attrs["Spec"]
        node.update({**spec, "Labels": {**(spec.get("Labels") or {}), "retired": "yes"}})
    try:
        client = agent.client()
        created = client.create_service(
            ServiceName="nowhere", SourceConfiguration=image_source(hello_image)
        )
        wait_status(client, created["Service"]["ServiceArn"], "CREATE_FAILED")
    finally:
        for node in cluster.manager.nodes.list():
            spec = node.attrs["Spec"]
            labels = {k: v for k, v in (spec.get("Labels") or {}).items() if k != "retired"}
            node.update({**spec, "Labels": labels})
    said = agent.cli("logs", "nowhere").stdout
    assert "no ready node meets the placement constraint 'node.labels.retired!=yes'" in said, said
    assert cluster.services(created["Service"]["ServiceId"]) == []
