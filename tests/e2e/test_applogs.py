"""Application logs from real containers: lines arrive within a second, in order, once,
through forced re-attaches and a collector restart; binary and 5 MB output don't break
the stream; stopped and removed containers are let go."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from slipway.backends import LABEL_MANAGED, LABEL_SERVICE_ID
from slipway.backends.docker_engine import DockerEngine
from slipway.observe.applogs import AppLogCollector, instance_stream
from slipway.observe.logs import MAX_LINE, LogStore
from testkit.harness import wait_for
from testkit.images import TEST_LABEL

pytestmark = pytest.mark.e2e

TICKER = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"


@pytest.fixture
def service_id() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def run(
    docker_client: docker.DockerClient, busybox_image: str, service_id: str
) -> Iterator[Callable[[str], str]]:
    """Start a slipway-labelled container running a shell script; removed afterwards."""
    containers = []

    def start(script: str) -> str:
        container = docker_client.containers.run(
            busybox_image,
            ["sh", "-c", script],
            detach=True,
            labels={LABEL_SERVICE_ID: service_id, LABEL_MANAGED: "true", TEST_LABEL: "applogs"},
        )
        containers.append(container)
        return container.id

    yield start
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


@pytest.fixture
def store(tmp_path: Path) -> LogStore:
    return LogStore(tmp_path / "logs")


@pytest.fixture
def collector(store: LogStore, docker_client: docker.DockerClient) -> Iterator[AppLogCollector]:
    collector = AppLogCollector(store, DockerEngine(docker_client))
    yield collector
    collector.stop()


def sync(collector: AppLogCollector, docker_client: docker.DockerClient, service_id: str) -> None:
    collector.sync(DockerEngine(docker_client).list_instances(service_id))


def messages(store: LogStore, service_id: str, container_id: str) -> list[str]:
    events, offset = [], 0
    while True:
        batch, offset = store.read(service_id, instance_stream(container_id), offset=offset)
        events += batch
        if not batch:
            return [e.message for e in events]


def ticks(count: int) -> list[str]:
    return [f"line {i}" for i in range(count)]


def test_lines_arrive_within_a_second_in_order(
    run, collector, store, docker_client, service_id
) -> None:
    container_id = run(TICKER)
    sync(collector, docker_client, service_id)
    assert collector.followed() == [container_id]
    stream = instance_stream(container_id)
    latencies: list[float] = []
    offset = 0
    deadline = time.monotonic() + 10
    while len(latencies) < 15 and time.monotonic() < deadline:
        batch, offset = store.read(service_id, stream, offset=offset)
        now = time.time()
        latencies += [now - e.timestamp for e in batch]
        time.sleep(0.02)
    assert len(latencies) >= 15
    assert max(latencies) < 1.0, latencies
    got = messages(store, service_id, container_id)
    assert got == ticks(len(got))


def test_forced_reattach_neither_loses_nor_repeats_lines(
    run, collector, store, docker_client, service_id
) -> None:
    container_id = run(TICKER)
    sync(collector, docker_client, service_id)
    wait_for(lambda: len(messages(store, service_id, container_id)) >= 3, 10, "first lines")
    for _ in range(5):  # as a dockerd restart would end the stream
        collector.interrupt(container_id)
        time.sleep(0.3)
        sync(collector, docker_client, service_id)
    count = len(messages(store, service_id, container_id))
    wait_for(lambda: len(messages(store, service_id, container_id)) >= count + 5, 10, "more")
    got = messages(store, service_id, container_id)
    assert got == ticks(len(got))


def test_collector_restart_goes_on_where_the_store_ends(
    run, store, docker_client, service_id
) -> None:
    container_id = run(TICKER)
    first = AppLogCollector(store, DockerEngine(docker_client))
    sync(first, docker_client, service_id)
    wait_for(lambda: len(messages(store, service_id, container_id)) >= 5, 10, "first lines")
    first.stop()
    time.sleep(1)  # lines printed while no agent runs are picked up later
    second = AppLogCollector(store, DockerEngine(docker_client))
    try:
        sync(second, docker_client, service_id)
        count = len(messages(store, service_id, container_id))
        wait_for(lambda: len(messages(store, service_id, container_id)) >= count + 5, 10, "more")
    finally:
        second.stop()
    got = messages(store, service_id, container_id)
    assert got == ticks(len(got))


def test_binary_and_five_megabyte_output(run, collector, store, docker_client, service_id) -> None:
    script = (
        "echo start; head -c 1000000 /dev/urandom; echo; echo binary done; "
        "head -c 5000000 /dev/zero | tr '\\0' x; echo; echo long done; " + TICKER
    )
    container_id = run(script)
    sync(collector, docker_client, service_id)
    wait_for(lambda: "line 3" in messages(store, service_id, container_id), 20, "ticker lines")
    got = messages(store, service_id, container_id)
    assert got[0] == "start"
    assert "x" * MAX_LINE + f"…[cut {5_000_000 - MAX_LINE} bytes]" in got
    tail = got[got.index("binary done") :]
    assert tail[:3] == ["binary done", tail[1], "long done"]
    assert tail[3:] == ticks(len(tail) - 3)
    for message in got:
        message.encode("utf-8")  # valid text, whatever the app wrote


def test_stopped_and_removed_containers_are_let_go(
    run, collector, store, docker_client, service_id
) -> None:
    short = run("echo one; echo two >&2; printf 'no newline'; sleep 1")
    long = run(TICKER)
    sync(collector, docker_client, service_id)
    assert sorted(collector.followed()) == sorted([short, long])
    wait_for(lambda: short not in collector.followed(), 10, "the exited one let go")
    assert sorted(messages(store, service_id, short)) == ["no newline", "one", "two"]
    docker_client.containers.get(long).remove(force=True)
    sync(collector, docker_client, service_id)
    assert collector.followed() == []
    got = messages(store, service_id, long)
    assert got == ticks(len(got))
