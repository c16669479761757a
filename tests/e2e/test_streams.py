"""WebSockets and server-sent events through a deployment, on both data planes (issue 18
part 5, issue 15): a WebSocket client and an SSE client connected to the first revision
keep receiving from it after the route has switched (new connections reach the new
revision) until the service's drain window (``slipway:drain-seconds``) ends; then the
old connections close and the clients reconnect to the new revision. Each SSE event
arrives before the app sends the next (the router does not buffer the stream)."""

from __future__ import annotations

import abc
import itertools
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import docker
import httpx
import pytest
import websocket
from typer.testing import CliRunner

from slipway.cli import app
from testkit import stream_app
from testkit.harness import (
    CaddyProcess,
    LocalRegistry,
    image_source,
    operations,
    push_image,
    running_caddy,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e

DRAIN = 12  # seconds: the service's drain window, longer than the settle window (2 s)
GATED = 3  # events sent each only once the one before arrived
BASE_PYTHON = "slipway/base-python:3.11"


@pytest.fixture(scope="module", params=["haproxy", "caddy"])
def data_plane(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def caddy_server(
    data_plane: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CaddyProcess]:
    """A Caddy per data plane (overrides the session's), so each plane's agent is new."""
    with running_caddy(tmp_path_factory.mktemp("caddy")) as process:
        yield process


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    return {"data_plane": request.getfixturevalue("data_plane")}


@pytest.fixture(scope="module")
def stream_local(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``testkit/stream_app.py`` on the python base image, built here."""
    context = tmp_path_factory.mktemp("streams")
    (context / "app.py").write_text(Path(stream_app.__file__).read_text())
    (context / "Dockerfile").write_text(
        f"FROM {BASE_PYTHON}\nCOPY app.py /app/app.py\nENV PORT=8080\n"
        'CMD ["python3", "/app/app.py"]\n'
    )
    local = f"slipway-test/streams:{uuid.uuid4().hex[:10]}"
    docker_client.images.build(path=str(context), tag=local, rm=True)
    try:
        yield local
    finally:
        docker_client.images.remove(local, force=True)


@pytest.fixture
def stream_image(
    docker_client: docker.DockerClient, registry: LocalRegistry, stream_local: str
) -> str:
    """The app pushed under a tag of the test's own (a variant pushed later is its own)."""
    image = f"{registry.host}/streams/app:t{uuid.uuid4().hex[:10]}"
    push_image(docker_client, stream_local, image)
    return image


class Stream(abc.ABC):
    """What both clients share: the ``revisions`` that answered, in order, read on a
    thread by ``follow`` until the connection ends (then ``closed`` is set)."""

    def __init__(self) -> None:
        self.revisions: list[str] = []
        self.closed = threading.Event()

    @abc.abstractmethod
    def read(self) -> str | None:
        """The revision of the next answer; None to stop reading."""

    def follow(self) -> Self:
        def run() -> None:
            try:
                while (revision := self.read()) is not None:
                    self.revisions.append(revision)
            except (websocket.WebSocketException, OSError, EOFError, httpx.HTTPError):
                pass
            finally:
                self.closed.set()

        threading.Thread(target=run, daemon=True).start()
        return self

    @abc.abstractmethod
    def close(self) -> None:
        """End the connection."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Socket(Stream):
    """A WebSocket client through the router; following, it sends a message and reads
    the echo, again, until the connection closes."""

    def __init__(self, agent, service: str) -> None:
        super().__init__()
        host = f"{service}.localhost:{agent.http_port}"
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{agent.http_port}/ws", host=host, timeout=30
        )
        self.stop = threading.Event()
        self.sent = itertools.count()

    def echo(self, text: str) -> str:
        self.ws.send(text)
        revision, _, back = self.ws.recv().partition(" ")
        assert back == text
        return revision

    def read(self) -> str | None:
        return None if self.stop.wait(0.2) else self.echo(f"message {next(self.sent)}")

    def close(self) -> None:
        self.stop.set()
        self.ws.close()


class Events(Stream):
    """A server-sent events client through the router; following, it reads the events
    until the stream ends."""

    def __init__(self, agent, service: str) -> None:
        super().__init__()
        self.agent = agent
        self.service = service
        self.id = uuid.uuid4().hex[:8]
        self.client = httpx.Client(
            headers={"Host": f"{service}.localhost:{agent.http_port}"},
            timeout=httpx.Timeout(30, connect=10),
        )
        request = self.client.build_request(
            "GET",
            f"http://127.0.0.1:{agent.http_port}/events?id={self.id}&gated={GATED}",
            headers={"Accept": "text/event-stream"},
        )
        self.response = self.client.send(request, stream=True)
        assert self.response.status_code == 200
        self.lines = self.response.iter_lines()

    def next_event(self) -> tuple[str, int]:
        for line in self.lines:
            if line.startswith("data: "):
                revision, n = line[len("data: ") :].split()
                return revision, int(n)
        raise EOFError("the stream ended")

    def gated(self) -> list[int]:
        """Read the gated events, acknowledging each (the app sends the next only then):
        a router that held an event back would stall here until the read timed out."""
        seen = []
        for _ in range(GATED):
            revision, n = self.next_event()
            seen.append(n)
            self.revisions.append(revision)
            ack = self.client.get(f"http://127.0.0.1:{self.agent.http_port}/ack?id={self.id}&n={n}")
            assert ack.status_code == 200
        return seen

    def read(self) -> str | None:
        return self.next_event()[0]

    def close(self) -> None:
        self.response.close()
        self.client.close()


def deployment_log(agent, service: str, op_id: str) -> str:
    result = CliRunner().invoke(app, ["logs", service, "--deployment", op_id], env=agent.env)
    return result.output


def test_streams_stay_through_a_deployment_until_the_drain_window_ends(
    data_plane, agent, stream_image, push_variant
):
    client = agent.client()
    name = f"streams-{data_plane}"
    arn = client.create_service(
        ServiceName=name,
        SourceConfiguration=image_source(stream_image),
        HealthCheckConfiguration={"Protocol": "HTTP", "Path": "/health", "Interval": 1},
        Tags=[{"Key": "slipway:drain-seconds", "Value": str(DRAIN)}],
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING")

    events = Events(agent, name)
    assert events.gated() == list(range(GATED))  # each arrived before the next was sent
    events.follow()
    socket = Socket(agent, name)
    assert socket.echo("hello") == "1"
    socket.follow()
    wait_for(lambda: len(socket.revisions) > 3 and len(events.revisions) > GATED + 3, 30, "both")
    try:
        push_variant(stream_image, APP_VERSION="2")
        client.start_deployment(ServiceArn=arn)

        def new_connection_revision() -> str:
            with Socket(agent, name) as fresh:
                return fresh.echo("who")

        wait_for(lambda: new_connection_revision() == "2", 120, "new connections on rev 2")
        # The route has switched: the old connections still get answers from rev 1.
        mark = (len(socket.revisions), len(events.revisions))
        wait_for(
            lambda: len(socket.revisions) > mark[0] + 3 and len(events.revisions) > mark[1] + 3,
            30,
            "the old connections to go on after the switch",
        )
        assert not socket.closed.is_set() and not events.closed.is_set()
        # The drain window ends: the old instance stops, its connections close.
        assert socket.closed.wait(120) and events.closed.wait(120)
        wait_status(client, arn, "RUNNING")
    finally:
        socket.close()
        events.close()
    assert set(socket.revisions) == {"1"} and set(events.revisions) == {"1"}

    (deploy,) = [o for o in operations(client, arn) if o["Type"] == "START_DEPLOYMENT"]
    assert deploy["Status"] == "SUCCEEDED"
    log = deployment_log(agent, name, deploy["Id"])
    assert f"Draining 1 instance(s) of the previous revision for up to {DRAIN}s" in log
    # Both clients were still connected when the window ended: the router counted
    # them in flight, so the old instance was kept for the whole window.
    assert f"The drain window ({DRAIN}s) is over with 2 request(s) or stream(s)" in log

    # Reconnected, both reach the new revision.
    with Socket(agent, name) as again:
        assert again.echo("back") == "2"
    with Events(agent, name) as events:
        events.gated()
        assert set(events.revisions) == {"2"}
