"""The host fence on a Swarm cluster's nodes, attacked for real (``scripts/test-cluster``):
``slipway-fence`` runs one task per node, and an instance on a worker node reaches
neither a metadata server on 169.254.169.254 in its node, nor a listener on its node's
address, nor another service's host-mode published port on its own node or another
node's address, while a port in ``fence_allow_ports`` and the router stay open.

Every target is a server of the test's own, in the node's network namespace, shown to
answer there first; the metadata one also answers the instance itself while its node's
jumps are taken out, until the fence task puts them back.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator

import docker
import httpx
import pytest

from slipway.backends import LABEL_SERVICE_ID
from slipway.backends.fence_node import GATEWAY_BRIDGE
from slipway.backends.swarm_fence import SERVICE
from slipway.backends.swarm_tasks import published_port
from testkit.cluster import TestCluster, cluster  # noqa: F401 - the fixture, for this file
from testkit.harness import image_source, scaled_service, wait_for, wait_status
from testkit.hostile import FENCED, METADATA, PROBE, parse_probes

pytestmark = pytest.mark.e2e
ALLOWED = 18099  # fence_allow_ports: open on every node's address
CLOSED = 18098  # a port of the node's address no setting opens
MD_PORT = 18097

# Run in a node's namespace: accept on each address:port given, print each peer.
SERVE = """
import socket, sys, threading
def serve(host, port):
    sock = socket.create_server((host, int(port)))
    while True:
        conn, peer = sock.accept()
        print("PEER", host, port, peer[0], flush=True)
        conn.close()
for target in sys.argv[1:]:
    threading.Thread(target=serve, args=target.split(","), daemon=False).start()
print("READY", flush=True)
"""


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    running: TestCluster = request.getfixturevalue("cluster")
    return {
        "backend": "swarm",
        "swarm_docker_host": running.manager_socket,
        "swarm_registry": request.getfixturevalue("registry").host,
        "swarm_constraints": "node.role==worker",  # instances on nodes 2 and 3 only
        "fence_allow_ports": str(ALLOWED),
        "drain_seconds": 1,
    }


def netns(node: int, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", f"slwc-n{node}", *argv], capture_output=True, text=True, check=check
    )


@contextlib.contextmanager
def node_servers(node: int, address: str) -> Iterator[None]:
    """Listeners of ours in node ``node``: its address at ``CLOSED`` and ``ALLOWED``, and
    169.254.169.254 (on an interface of its own) at ``MD_PORT``."""
    netns(node, "ip", "link", "del", "slw-md", check=False)
    # A bridge stands in for a dummy interface where the kernel has no dummy module.
    if netns(node, "ip", "link", "add", "slw-md", "type", "dummy", check=False).returncode:
        netns(node, "ip", "link", "add", "slw-md", "type", "bridge")
    netns(node, "ip", "addr", "add", f"{METADATA}/32", "dev", "slw-md")
    netns(node, "ip", "link", "set", "slw-md", "up")
    targets = [f"{address},{CLOSED}", f"{address},{ALLOWED}", f"{METADATA},{MD_PORT}"]
    server = subprocess.Popen(
        ["ip", "netns", "exec", f"slwc-n{node}", sys.executable, "-c", SERVE, *targets],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "READY"
        yield
    finally:
        server.kill()
        server.wait()
        netns(node, "ip", "link", "del", "slw-md", check=False)


def answers_in_node(node: int, host: str, port: int) -> bool:
    """A connection from the node itself (no fence there) to ``host:port`` is accepted."""
    code = f"import socket; socket.create_connection(({host!r}, {port}), timeout=5).close()"
    return netns(node, sys.executable, "-c", code, check=False).returncode == 0


def instance_box(
    running: TestCluster, service_id: str
) -> tuple[int, docker.models.containers.Container]:
    """The node number and container of the service's one running instance."""
    names = running.node_names()
    for swarm_service in running.services(service_id):
        for task in swarm_service.tasks(filters={"desired-state": "running"}):
            if task["Status"]["State"] == "running":
                node = int(names[task["NodeID"]].removeprefix("slwc-n"))
                daemon = docker.DockerClient(
                    base_url=f"unix:///run/slipway-cluster/n{node}/docker.sock"
                )
                (box,) = daemon.containers.list(
                    filters={"label": f"{LABEL_SERVICE_ID}={service_id}"}
                )
                return node, box
    raise AssertionError(f"no running instance of {service_id}")


def published_ports(running: TestCluster, service_id: str) -> dict[int, int]:
    """Node number -> the host-mode port the service's instance there publishes."""
    names = running.node_names()
    found = {}
    for swarm_service in running.services(service_id):
        for task in swarm_service.tasks(filters={"desired-state": "running"}):
            if task["Status"]["State"] == "running":
                node = int(names[task["NodeID"]].removeprefix("slwc-n"))
                found[node] = published_port(swarm_service.attrs)
    return found


def probe(box, *targets: tuple[str, str, int]) -> dict[str, str]:
    argv = [f"{name},{host},{port}" for name, host, port in targets]
    return parse_probes(box.exec_run(["python3", "-c", PROBE, *argv]).output.decode())


def fence_tasks(running: TestCluster) -> list[str]:
    """The node ids of the fence service's running tasks."""
    service = running.manager.services.get(SERVICE)
    return [
        t["NodeID"]
        for t in service.tasks(filters={"desired-state": "running"})
        if t["Status"]["State"] == "running"
    ]


def test_an_instance_on_a_worker_reaches_no_node_port_nor_metadata(
    agent,
    cluster,  # noqa: F811
    hello_image,
):
    # One fence task on every node, the manager too.
    wait_for(lambda: len(set(fence_tasks(cluster))) == 3, 180, "a fence task on each node")
    assert sorted(fence_tasks(cluster)) == sorted(cluster.node_names())

    def fenced_nodes() -> dict[str, bool]:
        rows = json.loads(agent.cli("nodes", "--json").stdout)
        return {row["Name"]: row["Fence"] for row in rows}

    # ``slipway nodes`` and /healthz say so.
    wait_for(lambda: all(fenced_nodes().values()), 30, "slipway nodes to show every fence")
    assert fenced_nodes() == {"slwc-n1": True, "slwc-n2": True, "slwc-n3": True}

    client = agent.client()
    target = scaled_service(client, "fenced-b", hello_image, MinSize=2, MaxSize=2)
    wait_for(lambda: len(published_ports(cluster, target["ServiceId"])) == 2, 60, "B on 2 nodes")
    created = client.create_service(
        ServiceName="fenced-a", SourceConfiguration=image_source(hello_image)
    )["Service"]
    wait_status(client, created["ServiceArn"], "RUNNING")
    node, box = instance_box(cluster, created["ServiceId"])
    assert node in (2, 3)  # a worker
    other = 5 - node
    mine, theirs = cluster.address(node), cluster.address(other)
    ports = published_ports(cluster, target["ServiceId"])
    assert sorted(ports) == [2, 3]  # B publishes on both workers

    with node_servers(node, mine):
        # Every target answers without the fence in between.
        for host, port in [(mine, CLOSED), (mine, ALLOWED), (METADATA, MD_PORT)]:
            assert answers_in_node(node, host, port), (host, port)
        for n, port in ports.items():
            assert answers_in_node(n, cluster.address(n), port), (n, port)
        found = probe(
            box,
            ("metadata", METADATA, MD_PORT),
            ("node", mine, CLOSED),
            ("published-here", mine, ports[node]),
            ("published-there", theirs, ports[other]),
            ("allowed", mine, ALLOWED),
            ("router", "10.199.77.1", agent.http_port),
        )
        assert found == {
            "metadata": FENCED,
            "node": FENCED,
            "published-here": FENCED,
            "published-there": FENCED,
            "allowed": "open",
            "router": "open",
        }, found
        # Its own route through the router, from inside the instance.
        route = box.exec_run(
            [
                "python3",
                "-c",
                "import urllib.request as u;"
                f" r = u.Request('http://10.199.77.1:{agent.http_port}/',"
                f" headers={{'Host': 'fenced-a.localhost:{agent.http_port}'}});"
                " print(u.urlopen(r, timeout=10).status)",
            ]
        )
        assert route.output.decode().strip() == "200", route.output

        # Without the node's jumps the metadata server answers the instance; the fence
        # task puts them back within its recheck.
        jump = ["INPUT", "-i", GATEWAY_BRIDGE, "-j", "SLIPWAY-FENCE-HOST"]
        netns(node, "iptables", "-w", "-D", *jump)
        opened = probe(box, ("metadata", METADATA, MD_PORT))
        back = wait_for(
            lambda: netns(node, "iptables", "-w", "-C", *jump, check=False).returncode == 0,
            30,
            "the fence task to put its jump back",
        )
        assert opened == {"metadata": "open"} and back
        assert probe(box, ("metadata", METADATA, MD_PORT)) == {"metadata": FENCED}

    # The routed requests through the router still reach both services.
    for name in ("fenced-a", "fenced-b"):
        assert agent.get(name).status_code == 200, name
    health = httpx.get(f"{agent.endpoint}/healthz", timeout=10).json()
    assert not [p for p in health["problems"] if "host fence" in p], health
    for arn in (created["ServiceArn"], target["ServiceArn"]):
        client.delete_service(ServiceArn=arn)
    for arn in (created["ServiceArn"], target["ServiceArn"]):
        wait_status(client, arn, "DELETED")
