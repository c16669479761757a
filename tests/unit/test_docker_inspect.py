"""Inspections are kept while Docker's event stream is open, until an event names
their container; the listing until a container comes or goes or a change of this
agent's own; without the stream every look asks Docker."""

from __future__ import annotations

import queue
import threading

from slipway.backends.docker_inspect import Inspections

END = object()


class FakeApi:
    def __init__(self) -> None:
        self.inspects: list[str] = []
        self.listings = 0
        self.state = {"c1": "running"}
        self.events_queue: queue.Queue = queue.Queue()
        self.streaming = threading.Event()

    def inspect_container(self, container_id: str) -> dict:
        self.inspects.append(container_id)
        return {"Id": container_id, "State": {"Status": self.state[container_id]}}

    def containers(self, all: bool, filters: dict) -> list[dict]:
        assert all and filters == {"label": "slipway.managed=true"}
        self.listings += 1
        return [{"Id": container_id} for container_id in self.state]

    def events(self, decode: bool, filters: dict):
        assert filters == {"type": "container", "label": "slipway.managed=true"}

        def stream():
            self.streaming.set()
            while (event := self.events_queue.get()) is not END:
                yield event
                self.events_queue.task_done()

        return stream()


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()


def test_kept_until_an_event_names_the_container():
    client = FakeClient()
    inspections = Inspections(client, "slipway.managed=true")
    try:
        inspections.get("c1")  # starts following
        assert client.api.streaming.wait(5)
        client.api.events_queue.put({"id": "other"})  # an event: what is kept is current
        client.api.events_queue.join()
        assert inspections.get("c1")["State"]["Status"] == "running"
        before = len(client.api.inspects)
        assert inspections.get("c1")["State"]["Status"] == "running"
        assert len(client.api.inspects) == before  # kept: no inspect for this look
        client.api.state["c1"] = "exited"
        client.api.events_queue.put({"id": "c1", "status": "die"})
        client.api.events_queue.join()
        assert inspections.get("c1")["State"]["Status"] == "exited"
    finally:
        inspections.stop()
        client.api.events_queue.put(END)


def test_nothing_kept_while_the_stream_is_not_open():
    client = FakeClient()
    inspections = Inspections(client, "slipway.managed=true")
    inspections._thread = threading.Thread()  # never follows: as if dockerd were away
    inspections.get("c1")
    inspections.get("c1")
    assert client.api.inspects == ["c1", "c1"]
    inspections.all()
    inspections.all()
    assert client.api.listings == 2


def test_listing_kept_until_an_event_or_a_change_of_our_own():
    client = FakeClient()
    inspections = Inspections(client, "slipway.managed=true")
    try:
        inspections.get("c1")
        assert client.api.streaming.wait(5)
        client.api.events_queue.put({"id": "other"})
        client.api.events_queue.join()
        assert [a["Id"] for a in inspections.all()] == ["c1"]
        assert [a["Id"] for a in inspections.all()] == ["c1"]
        assert client.api.listings == 1

        client.api.state["c2"] = "running"  # created by this agent: seen at once
        inspections.changed()
        assert [a["Id"] for a in inspections.all()] == ["c1", "c2"]
        assert client.api.listings == 2

        del client.api.state["c1"]  # removed by someone else: seen with its event
        client.api.events_queue.put({"id": "c1", "status": "destroy"})
        client.api.events_queue.join()
        assert [a["Id"] for a in inspections.all()] == ["c2"]
        assert client.api.listings == 3
    finally:
        inspections.stop()
        client.api.events_queue.put(END)


def test_listing_kept_through_events_that_change_no_membership():
    """A die, start or exec of some container (another agent's, on a shared host) drops
    only that container's inspect; the listing waits for a create or a destroy."""
    client = FakeClient()
    inspections = Inspections(client, "slipway.managed=true")
    try:
        inspections.get("c1")
        assert client.api.streaming.wait(5)
        client.api.events_queue.put({"id": "other"})
        client.api.events_queue.join()
        inspections.all()
        client.api.state["c1"] = "exited"
        for action in ("die", "exec_start: sh -c true", "health_status: healthy"):
            client.api.events_queue.put({"id": "c1", "Action": action, "status": action})
            client.api.events_queue.join()
        assert [a["State"]["Status"] for a in inspections.all()] == ["exited"]
        assert client.api.listings == 1

        client.api.state["c2"] = "created"
        client.api.events_queue.put({"id": "c2", "Action": "create", "status": "create"})
        client.api.events_queue.join()
        assert [a["Id"] for a in inspections.all()] == ["c1", "c2"]
        assert client.api.listings == 2
    finally:
        inspections.stop()
        client.api.events_queue.put(END)
