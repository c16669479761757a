"""``backend: swarm`` and registries: an image in a registry that requires basic auth
(``docker-registry`` with htpasswd) runs on a worker node that never logged in, with the
credentials ``slipway registries login`` stored passed to Swarm with the service; a node
that cannot pull fails the operation naming the node, and leaves nothing behind.
Instances go to node 3 (``swarm_constraints``), so the node that pulls is known."""

from __future__ import annotations

import secrets
import uuid
import warnings
from collections.abc import Iterator

import docker
import pytest

from testkit.cluster import TestCluster, cluster  # noqa: F401 - the fixture, for this file
from testkit.harness import LocalRegistry, image_source, push_image, wait_status

with warnings.catch_warnings():  # bcrypt for htpasswd, from the C library (deprecated)
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

pytestmark = pytest.mark.e2e
USER, PASSWORD = "deployer", secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    root = tmp_path_factory.mktemp("private-registry")
    htpasswd = root / "htpasswd"
    hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))
    htpasswd.write_text(f"{USER}:{hashed}\n")
    process = LocalRegistry.start(root, htpasswd=htpasswd)
    try:
        yield process
    finally:
        process.stop()


def CLUSTER_REGISTRIES(request: pytest.FixtureRequest) -> list[str]:  # noqa: N802 - testkit's name
    return [request.getfixturevalue("private").host]


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    running: TestCluster = request.getfixturevalue("cluster")
    return {
        "backend": "swarm",
        "swarm_docker_host": running.manager_socket,
        "swarm_constraints": "node.hostname==slwc-n3",
    }


def test_a_node_that_cannot_pull_fails_the_operation_naming_it(
    agent,
    cluster,  # noqa: F811
    registry,
    hello_image,
):
    client = agent.client()
    cluster.block(3, registry.host)  # the manager reaches the registry; node 3 does not
    try:
        created = client.create_service(
            ServiceName="unpulled", SourceConfiguration=image_source(hello_image)
        )["Service"]
        wait_status(client, created["ServiceArn"], "CREATE_FAILED", timeout=120)
    finally:
        cluster.unblock(3, registry.host)
    said = agent.cli("logs", "unpulled").stdout
    assert "node slwc-n3 cannot pull the image" in said, said
    assert cluster.services(created["ServiceId"]) == []


def test_a_private_registry_s_credentials_reach_the_nodes(
    agent,
    cluster,  # noqa: F811
    private,
    hello_local,
):
    pusher = docker.from_env()
    try:
        pusher.login(USER, PASSWORD, registry=private.host)
        image = f"{private.host}/examples/hello:t{uuid.uuid4().hex[:10]}"
        push_image(pusher, hello_local, image)
    finally:
        pusher.close()
    client = agent.client()

    # Without credentials the registry refuses, and the call says so.
    with pytest.raises(client.exceptions.InvalidRequestException, match="requires credentials"):
        client.create_service(ServiceName="nologin", SourceConfiguration=image_source(image))

    agent.cli("registries", "login", private.host, "-u", USER, "--password-stdin", stdin=PASSWORD)
    created = client.create_service(ServiceName="private", SourceConfiguration=image_source(image))[
        "Service"
    ]
    wait_status(client, created["ServiceArn"], "RUNNING")
    assert agent.get("private").text.strip().startswith("Hello from slipway!")
    # Node 3 never logged in: it pulled with the credentials Swarm passed it.
    (service,) = cluster.services(created["ServiceId"])
    names = cluster.node_names()
    nodes = {names[t["NodeID"]] for t in service.tasks(filters={"desired-state": "running"})}
    assert nodes == {"slwc-n3"}
