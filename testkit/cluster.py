"""A real 3-node Docker Swarm for e2e tests (``scripts/test-cluster``), and its fixture.

``cluster`` (per module; import it into the test file) starts the nodes once for the
file, with the session registry forwarded to every node as the same ``127.0.0.1:PORT``
the agent names images by, and tears everything down after the file. Only the test
cluster's own daemons are in swarm mode; the host's dockerd is never touched.
"""

from __future__ import annotations

import fcntl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from slipway.backends import LABEL_MANAGED, LABEL_SERVICE_ID

from .harness import LocalRegistry

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "test-cluster"
STATE = Path("/run/slipway-cluster")
LOCK = Path(tempfile.gettempdir()) / "slipway-test-cluster.lock"
NODES = 3


def _run(*args: str) -> str:
    done = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode:
        raise RuntimeError(f"test-cluster {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


class TestCluster:
    """The running cluster: node 1 is the manager; node N answers at ``address(N)``."""

    __test__ = False  # not a test class, despite its name

    def __init__(self) -> None:
        self.manager_socket = f"unix://{STATE}/n1/docker.sock"
        self.manager = docker.DockerClient(base_url=self.manager_socket)

    @staticmethod
    def address(node: int) -> str:
        return f"10.199.77.1{node}"

    def node_of(self, address: str) -> int:
        """The node number of a node address."""
        return int(address.rsplit(".", 1)[1]) - 10

    def kill(self, node: int) -> None:
        """``kill -9`` node ``node``'s daemon (dockerd and its containerd)."""
        _run("kill", str(node))

    def revive(self, *nodes: int) -> None:
        """Start the daemons of ``nodes`` again after ``kill``, their old containers
        cleared (rebooted machines), and wait until the manager sees them ready."""
        _run("revive", *(str(n) for n in nodes))

    def block(self, node: int, registry: str) -> None:
        """Node ``node`` cannot reach ``registry`` (host:port) until ``unblock``."""
        _run("block", str(node), registry.rpartition(":")[2])

    def unblock(self, node: int, registry: str) -> None:
        _run("unblock", str(node), registry.rpartition(":")[2])

    def services(self, service_id: str | None = None) -> list:
        """The slipway Swarm services (one per instance), of one slipway service or all."""
        labels = [f"{LABEL_MANAGED}=true"]
        if service_id is not None:
            labels.append(f"{LABEL_SERVICE_ID}={service_id}")
        return self.manager.services.list(filters={"label": labels})

    def node_names(self) -> dict[str, str]:
        """Node id -> host name (slwc-n1 ...)."""
        return {n.id: n.attrs["Description"]["Hostname"] for n in self.manager.nodes.list()}

    def close(self) -> None:
        self.manager.close()


@pytest.fixture(scope="module")
def cluster(registry: LocalRegistry, request: pytest.FixtureRequest) -> Iterator[TestCluster]:
    # One cluster per host (fixed names, namespaces, bridge): test files that use it take
    # turns, whichever run or worker they belong to. A file's CLUSTER_REGISTRIES(request)
    # names more registries (host:port) the nodes reach.
    more = getattr(request.module, "CLUSTER_REGISTRIES", None)
    hosts = [registry.host, *(more(request) if more else [])]
    with LOCK.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield from _cluster(hosts)


def _cluster(registries: list[str]) -> Iterator[TestCluster]:
    ports = [arg for host in registries for arg in ("--registry-port", host.rpartition(":")[2])]
    try:
        _run("up", *ports)
    except (RuntimeError, OSError) as exc:
        _run("down")
        pytest.fail(str(exc))
    running = TestCluster()
    try:
        yield running
    finally:
        running.close()
        _run("down")
