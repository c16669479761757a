"""Real components for e2e tests: Caddy, a local registry, docker and a busybox image.

Fixtures:
- ``docker_client`` (session): a ``docker.DockerClient``; skips if no daemon answers.
- ``busybox_image`` (session): ``slipway-test/busybox:latest``, imported offline from the
  host's busybox-static; serves ``/www/index.html`` with ``httpd -f -p $PORT -h /www``.
- ``registry`` (session): ``docker-registry serve`` on 127.0.0.1:<free port>, storage in tmp.
- ``caddy`` (per test): ``caddy run`` with only its admin API on 127.0.0.1:<free port>;
  ``http_port`` is a free port for the server the Router configures.
- ``caddy_server`` (session): the Caddy that agents own.
- ``hello_image`` (per test): the example app pushed under a tag of the test's own;
  ``push_variant(image, KEY=VALUE)`` pushes a new revision under that tag.
- ``agent`` (per module): a real ``slipway serve``; a module's ``AGENT_SETTINGS`` dict
  (or a function of the fixture request returning one) sets its SLIPWAY_* settings.
  Its route DNS responder (on a free port of its own) outlives ``agent.kill()`` like
  it outlives a real crash, as does the HAProxy of its data plane; teardown ends both
  with ``stop_children()``. Its instances publish on this worker's own slice of the
  instance network (``worker_network()``).
- ``dns_server`` (per module): a DNS server of the test's own for ``dns_resolver``.

Run in parallel (``pytest -n N --dist loadfile``, as ``scripts/test`` does), each xdist
worker has its own Caddy, registry, agents and instance addresses; what they share is
the docker daemon. A module holds the daemon shared while it runs (``docker_host``); a
test marked ``alone`` (it restarts dockerd, or needs the CPU to itself) holds it
exclusively, so no other module's containers live through it.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from testkit import images
from testkit.dnsserver import DnsServer
from testkit.harness import (
    AgentProcess,
    CaddyProcess,
    LocalRegistry,
    push_image,
    running_agent,
    running_caddy,
)

# The longest files (minutes each, serially), started first: a parallel run then does
# not wait for one of them at its end.
LONGEST_FIRST = (
    "test_runtimes.py",
    "test_rollouts.py",
    "test_triggers.py",
    "test_code_services.py",
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A failed test's report carries the end of its agent's log: CI shows what the
    agent was doing, where a timed-out wait alone says only that it was not done."""
    outcome = yield
    report = outcome.get_result()
    agent = getattr(item, "funcargs", {}).get("agent")
    if report.failed and isinstance(agent, AgentProcess):
        with contextlib.suppress(OSError):
            report.sections.append(("agent log (last 80 lines)", _tail(agent.log_text(), 80)))


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


# Every e2e process on this host takes these, whichever run or worker it belongs to.
HOST_LOCK = Path(tempfile.gettempdir()) / "slipway-e2e-docker.lock"
TURNSTILE = Path(tempfile.gettempdir()) / "slipway-e2e-docker.turnstile"


@contextlib.contextmanager
def _locked(path: Path, mode: int) -> Iterator[int]:
    with path.open("a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield handle.fileno()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _host_shared() -> Iterator[int]:
    """The docker daemon held shared (a file lock's descriptor). New holders pass the
    turnstile first, so one waiting to be alone is not starved."""
    with _locked(TURNSTILE, fcntl.LOCK_EX):
        shared = HOST_LOCK.open("a")
        fcntl.flock(shared, fcntl.LOCK_SH)
    try:
        yield shared.fileno()
    finally:
        shared.close()  # releases the lock


@pytest.fixture(scope="module", autouse=True)
def docker_host() -> Iterator[int]:
    """The daemon held shared for the module: a test alone (one that restarts dockerd)
    runs while no other module's test does."""
    with _host_shared() as held:
        yield held


@pytest.fixture(autouse=True)
def alone(request: pytest.FixtureRequest, docker_host: int) -> Iterator[None]:
    """For a test marked ``alone``: the module's shared hold is given up, then the daemon
    taken exclusively (turnstile held: nobody new starts) until the test ends."""
    if request.node.get_closest_marker("alone") is None:
        yield
        return
    fcntl.flock(docker_host, fcntl.LOCK_UN)  # two waiting to be alone must not deadlock
    with _locked(TURNSTILE, fcntl.LOCK_EX):
        fcntl.flock(docker_host, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(docker_host, fcntl.LOCK_SH)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        with _host_shared():  # session fixtures start before a module's hold
            client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no docker daemon: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_client: docker.DockerClient) -> str:
    with _host_shared():
        return images.busybox_image(docker_client)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    process = LocalRegistry.start(tmp_path_factory.mktemp("registry"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def caddy(tmp_path: Path) -> Iterator[CaddyProcess]:
    with running_caddy(tmp_path) as process:
        yield process


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BASE_PYTHON = "slipway/base-python:3.11"
HELLO_LOCAL = "slipway-test/hello:latest"


@pytest.fixture(scope="session")
def caddy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaddyProcess]:
    with running_caddy(tmp_path_factory.mktemp("caddy")) as process:
        yield process


@pytest.fixture(scope="session")
def hello_local(docker_client: docker.DockerClient) -> str:
    with _host_shared():
        try:
            docker_client.images.get(BASE_PYTHON)
        except docker.errors.ImageNotFound:
            pytest.fail(f"{BASE_PYTHON} is missing: scripts/setup-host builds it")
        docker_client.images.build(path=str(EXAMPLES / "hello"), tag=HELLO_LOCAL, rm=True)
    return HELLO_LOCAL


@pytest.fixture(scope="session")
def push_hello(
    docker_client: docker.DockerClient, registry: LocalRegistry, hello_local: str
) -> Callable[[], str]:
    """Push the example app under a fresh tag, so variants pushed later stay local."""

    def push() -> str:
        tag = f"t{uuid.uuid4().hex[:10]}"
        registry.push(docker_client, hello_local, "examples/hello", tag)
        return f"{registry.host}/examples/hello:{tag}"

    return push


@pytest.fixture
def hello_image(push_hello: Callable[[], str]) -> str:
    return push_hello()


@pytest.fixture
def push_variant(docker_client: docker.DockerClient) -> Callable[..., str]:
    """Push a new revision under an existing tag: the same app with extra ENV lines."""

    def push(image: str, **env: str) -> str:
        lines = [f"FROM {image}"] + [f"ENV {k}={v}" for k, v in env.items()]
        local = f"slipway-test/variant:{uuid.uuid4().hex[:10]}"
        docker_client.images.build(
            fileobj=io.BytesIO("\n".join(lines).encode()), tag=local, rm=True
        )
        try:
            return push_image(docker_client, local, image)
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
    if callable(settings):  # settings that depend on other fixtures (ports, URLs)
        settings = settings(request)
    with running_agent(tmp_path_factory.mktemp("agent"), caddy_server, **settings) as process:
        yield process


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    """Where an agent's domain checks ask (``dns_resolver``): a server of the test's own,
    knowing only the names a test gives it."""
    server = DnsServer().start()
    try:
        yield server
    finally:
        server.stop()
