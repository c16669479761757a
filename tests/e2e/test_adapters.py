"""The three adapters against the real parts: docker-registry, Docker Engine, Caddy."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from slipway.backends import PUBLISHED_PORT, InstanceSpec
from slipway.backends.docker_engine import DockerEngine
from slipway.errors import BackendError, ImageNotFound, RegistryUnreachable
from slipway.health import until_healthy
from slipway.routing.router import Route, Router
from slipway.sources.registry import ImageRef, RegistryClient
from testkit.harness import free_port, worker_network
from testkit.images import BUSYBOX_INDEX, TEST_LABEL

pytestmark = pytest.mark.e2e

HTTPD = "exec httpd -f -p $PORT -h /www"


@pytest.fixture
def engine(docker_client: docker.DockerClient) -> Iterator[DockerEngine]:
    """A DockerEngine; containers this test labelled are removed afterwards."""
    yield DockerEngine(docker_client, instance_network=worker_network())
    for container in docker_client.containers.list(
        all=True, filters={"label": [f"{TEST_LABEL}=adapters"]}
    ):
        container.remove(force=True)


@pytest.fixture(scope="module")
def pushed(
    docker_client: docker.DockerClient, busybox_image: str, registry: Any
) -> Iterator[tuple[ImageRef, str]]:
    """The busybox image in the local registry as ``hello:v1``; (ref, digest docker reported)."""
    digest = registry.push(docker_client, busybox_image, "slipway-test/hello", "v1")
    ref = ImageRef.parse(f"{registry.host}/slipway-test/hello:v1")
    yield ref, digest
    for name in (str(ref), ref.with_digest(digest)):  # untag only: busybox_image keeps it
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(name)


def spec(image: str, digest: str, *, command: str | None = HTTPD, index: int = 0) -> InstanceSpec:
    return InstanceSpec(
        service_id="svc-e2e",
        service_name="e2e-hello",
        deployment_id=uuid.uuid4().hex,
        revision=digest,
        image=image,
        port=8080,
        env={"GREETING": "hi"},
        command=command,
        cpu_units=256,
        memory_mb=128,
        index=index,
        extra_labels={TEST_LABEL: "adapters"},
    )


def via_caddy(caddy: Any, host: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{caddy.http_port}/", headers={"Host": host}, timeout=10)


def test_resolve_returns_the_digest_docker_pushed(
    pushed: tuple[ImageRef, str], registry: Any
) -> None:
    ref, digest = pushed
    client = RegistryClient()
    assert client.resolve(ref) == digest
    assert client.resolve(ImageRef.parse(ref.with_digest(digest))) == digest
    with pytest.raises(ImageNotFound, match="nope"):
        client.resolve(ImageRef.parse(f"{registry.host}/slipway-test/hello:nope"))
    with pytest.raises(ImageNotFound):
        client.resolve(ImageRef.parse(f"{registry.host}/slipway-test/hello@sha256:{'0' * 64}"))


def test_pull_errors(engine: DockerEngine, registry: Any) -> None:
    with pytest.raises(ImageNotFound):
        engine.pull(f"{registry.host}/slipway-test/hello:does-not-exist")
    with pytest.raises(RegistryUnreachable):
        engine.pull("127.0.0.1:1/slipway-test/hello:v1")


def test_start_needs_a_local_image(engine: DockerEngine) -> None:
    missing = "127.0.0.1:1/slipway-test/missing@sha256:" + "0" * 64
    with pytest.raises(BackendError, match="not on this host"):
        engine.start_instance(spec(missing, "sha256:" + "0" * 64))


def test_instance_served_through_caddy(
    engine: DockerEngine,
    docker_client: docker.DockerClient,
    pushed: tuple[ImageRef, str],
    caddy: Any,
) -> None:
    ref, digest = pushed
    image = ref.with_digest(digest)
    engine.pull(image)
    instance = engine.start_instance(spec(image, digest))
    assert instance.state == "running"
    assert instance.host_port is not None
    assert instance.revision == digest

    container = docker_client.containers.get(instance.id)
    assert container.labels["slipway.managed"] == "true"
    assert container.labels["slipway.service-id"] == "svc-e2e"
    assert "PORT=8080" in container.attrs["Config"]["Env"]
    assert container.attrs["HostConfig"]["NanoCpus"] == 250_000_000
    assert container.attrs["HostConfig"]["Memory"] == 128 * 1024 * 1024
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"

    for pause in until_healthy(
        instance.host_ip, instance.host_port, "HTTP", "/", 0.1, 1, 1, 1, deadline=10,
        is_alive=lambda: (engine.get_instance(instance.id) or instance).state == "running",
    ):  # fmt: skip
        time.sleep(pause)
    assert instance.host_ip.startswith("127.77.") and instance.host_port == PUBLISHED_PORT
    assert httpx.get(f"http://{instance.address}/").text == BUSYBOX_INDEX
    assert [i.id for i in engine.list_instances("svc-e2e")] == [instance.id]

    router = Router(caddy.admin_url, caddy.http_port)
    upstream = instance.address
    assert router.ping()
    assert router.apply([Route("x.localhost", (upstream,))]) is True
    assert router.apply([Route("x.localhost", (upstream,))]) is False
    response = via_caddy(caddy, "x.localhost")
    assert (response.status_code, response.text) == (200, BUSYBOX_INDEX)
    assert via_caddy(caddy, "X.localhost:80").status_code == 200
    assert upstream in router.upstream_requests()

    unknown = via_caddy(caddy, "nobody.localhost")
    assert (unknown.status_code, unknown.text) == (404, "No service at this host")

    assert router.apply([Route("x.localhost", (upstream,), paused=True)]) is True
    paused = via_caddy(caddy, "x.localhost")
    assert (paused.status_code, paused.text) == (503, "Service is paused")
    assert paused.headers["content-type"].startswith("text/plain")

    assert router.apply([Route("x.localhost", ())]) is True
    empty = via_caddy(caddy, "x.localhost")
    assert (empty.status_code, empty.text) == (503, "Service is not available")

    caddy.restart()
    assert router.apply([Route("x.localhost", (upstream,))]) is True
    assert via_caddy(caddy, "x.localhost").text == BUSYBOX_INDEX
    assert router.apply([Route("x.localhost", (upstream,))]) is False

    engine.stop_instance(instance.id, timeout=2)
    assert engine.get_instance(instance.id) is None
    assert engine.list_instances("svc-e2e") == []
    engine.stop_instance(instance.id)  # already gone: fine
    engine.remove_image(image)  # still tagged locally as busybox: left alone, no error
    engine.remove_image("127.0.0.1:1/never/pulled:x")


def test_same_instance_started_twice_is_reused(
    engine: DockerEngine, pushed: tuple[ImageRef, str]
) -> None:
    ref, digest = pushed
    image = ref.with_digest(digest)
    engine.pull(image)
    first_spec = spec(image, digest, index=3)
    first = engine.start_instance(first_spec)
    assert first.name.endswith("-3")
    again = engine.start_instance(first_spec)
    assert again.id == first.id
    engine.stop_instance(first.id, timeout=1)


def test_crashing_instance_reports_exit_and_logs(
    engine: DockerEngine, pushed: tuple[ImageRef, str]
) -> None:
    ref, digest = pushed
    image = ref.with_digest(digest)
    engine.pull(image)
    instance = engine.start_instance(spec(image, digest, command="echo booting $GREETING; exit 3"))
    end = time.monotonic() + 10
    seen = engine.get_instance(instance.id)
    while seen is not None and seen.state == "running" and time.monotonic() < end:
        time.sleep(0.1)
        seen = engine.get_instance(instance.id)
    assert seen is not None
    assert seen.state in ("restarting", "exited")
    assert seen.exit_code == 3
    assert seen.host_port is None
    assert "booting hi" in engine.logs(instance.id)
    engine.stop_instance(instance.id, timeout=1)
    assert engine.get_instance(instance.id) is None


def test_request_during_switch_waits_for_upstream(caddy: Any) -> None:
    """An upstream that comes up within try_duration serves the request instead of a 502."""
    port = free_port()

    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    servers: list[HTTPServer] = []

    def serve_later() -> None:
        time.sleep(1)
        server = HTTPServer(("127.0.0.1", port), Hello)
        servers.append(server)
        server.serve_forever(poll_interval=0.05)

    Router(caddy.admin_url, caddy.http_port).apply(
        [Route("late.localhost", (f"127.0.0.1:{port}",))]
    )
    thread = threading.Thread(target=serve_later, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        response = via_caddy(caddy, "late.localhost")
    finally:
        while not servers and thread.is_alive():
            time.sleep(0.05)
        for server in servers:
            server.shutdown()
            server.server_close()
    assert (response.status_code, response.text) == (200, "ok")
    assert 0.9 < time.monotonic() - started < 5
