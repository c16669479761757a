"""Fixtures around a running agent: a session Caddy it owns, the example app's image in
the test registry, and the agent process itself (one per test module)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from conftest import CaddyProcess, LocalRegistry
from harness import AgentProcess

from slipway.backends import LABEL_SERVICE_ID

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BASE_PYTHON = "slipway/base-python:3.11"
HELLO_LOCAL = "slipway-test/hello:latest"


@pytest.fixture(scope="session")
def caddy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaddyProcess]:
    process = CaddyProcess(tmp_path_factory.mktemp("caddy"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def hello_local(docker_client: docker.DockerClient) -> str:
    try:
        docker_client.images.get(BASE_PYTHON)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{BASE_PYTHON} is missing: scripts/setup-host builds it")
    docker_client.images.build(path=str(EXAMPLES / "hello"), tag=HELLO_LOCAL, rm=True)
    return HELLO_LOCAL


@pytest.fixture
def hello_image(
    docker_client: docker.DockerClient, registry: LocalRegistry, hello_local: str
) -> str:
    """The example app under a tag of this test's own, so variants pushed stay local."""
    tag = f"t{uuid.uuid4().hex[:10]}"
    registry.push(docker_client, hello_local, "examples/hello", tag)
    return f"{registry.host}/examples/hello:{tag}"


@pytest.fixture
def push_variant(docker_client: docker.DockerClient, registry: LocalRegistry) -> Callable[..., str]:
    """Push a new revision under an existing tag: the same app with extra ENV lines."""

    def push(image: str, **env: str) -> str:
        lines = [f"FROM {image}"] + [f"ENV {k}={v}" for k, v in env.items()]
        local = f"slipway-test/variant:{uuid.uuid4().hex[:10]}"
        docker_client.images.build(
            fileobj=io.BytesIO("\n".join(lines).encode()), tag=local, rm=True
        )
        repository, tag = image.removeprefix(f"{registry.host}/").rsplit(":", 1)
        try:
            return registry.push(docker_client, local, repository, tag)
        finally:
            docker_client.images.remove(local, noprune=True)

    return push


@pytest.fixture(scope="module")
def agent(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    caddy_server: CaddyProcess,
    docker_client: docker.DockerClient,
) -> Iterator[AgentProcess]:
    settings = getattr(request.module, "AGENT_SETTINGS", {})
    process = AgentProcess(
        tmp_path_factory.mktemp("agent"),
        caddy_server.admin_url,
        caddy_server.http_port,
        **settings,
    )
    process.caddy = caddy_server
    process.start()
    try:
        yield process
    finally:
        service_ids = []
        if process.proc and process.proc.poll() is None:
            client = process.client()
            service_ids = [s["ServiceId"] for s in client.list_services()["ServiceSummaryList"]]
        process.kill()
        for service_id in service_ids:
            for container in docker_client.containers.list(
                all=True, filters={"label": f"{LABEL_SERVICE_ID}={service_id}"}
            ):
                container.remove(force=True)
