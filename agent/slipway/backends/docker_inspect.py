"""Container inspections, and the list of slipway's containers, kept until Docker says
something changed.

Listing slipway's containers with their state, restart count and published address
takes a listing and one inspect per container; the reconcile pass, the routes and the
metrics ask for that list every few seconds. With 40 services idle, those inspects were
two thirds of the agent's CPU (a profile of the bulk bench), and with 100 the listing
alone was a tenth. So an inspect is kept until an event of Docker's event stream names
its container (start, die, restart, stop, destroy, ...), and the listing until a
container comes or goes (a ``create`` or ``destroy`` event) or this agent creates or
removes one itself (its own change must show at once, not when the event arrives).
The label is shared by every slipway on the host: on a host where other agents' tests
came and went, any event dropping the listing cost the idle bulk bench a listing and
an inspect per container per reconcile pass. While the stream is not open (at start,
after dockerd restarts) nothing is kept and every look asks Docker.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import docker
import docker.errors
import requests

log = logging.getLogger("slipway.backends")

_DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException)
RECONNECT_SECONDS = 1.0
# The events that change which containers carry the label; any other (die, start,
# exec_start, health_status, ...) changes only the inspect of the container it names.
_MEMBERSHIP = frozenset({"create", "destroy"})


class Inspections:
    def __init__(self, client: docker.DockerClient, label: str) -> None:
        self._client = client
        self._label = label  # only containers with this label are followed and kept
        self._kept: dict[str, dict[str, Any]] = {}
        self._listed: list[str] | None = None  # ids of the containers with the label
        self._lock = threading.Lock()
        self._live = False  # the event stream is open: what is kept is current
        self._changes = 0  # events seen; an inspect that overlapped one is not kept
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self, container_id: str) -> dict[str, Any] | None:
        """The container's inspect, or None if it is gone; raises Docker's errors."""
        self._follow_events()
        with self._lock:
            if self._live and container_id in self._kept:
                return self._kept[container_id]
            changes = self._changes
        try:
            attrs = self._client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        with self._lock:
            if self._live and self._changes == changes:
                self._kept[attrs["Id"]] = attrs
        return attrs

    def all(self) -> list[dict[str, Any]]:
        """The inspects of every container with the label; raises Docker's errors."""
        self._follow_events()
        with self._lock:
            listed = self._listed if self._live else None
            changes = self._changes
        if listed is None:
            filters = {"label": self._label}
            listed = [c["Id"] for c in self._client.api.containers(all=True, filters=filters)]
            with self._lock:
                if self._live and self._changes == changes:
                    self._listed = listed
        found = (self.get(container_id) for container_id in listed)
        return [attrs for attrs in found if attrs is not None]

    def changed(self, *container_ids: str) -> None:
        """This agent changed containers (created, started, removed): what is kept of
        them, and the listing, are not current any more."""
        with self._lock:
            self._outdate(*container_ids)

    def _outdate(self, *container_ids: str, listing: bool = True) -> None:
        """With the lock held: forget these inspects (and the listing, unless told it did
        not change), and count a change so that a look under way meanwhile is not kept."""
        for container_id in container_ids:
            self._kept.pop(container_id, None)
        if listing:
            self._listed = None
        self._changes += 1

    def stop(self) -> None:
        self._stop.set()

    def _follow_events(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._follow, name="slipway-docker-events", daemon=True
            )
        self._thread.start()

    def _follow(self) -> None:
        filters = {"type": "container", "label": self._label}
        while not self._stop.is_set():
            try:
                events = self._client.api.events(decode=True, filters=filters)
                with self._lock:  # open from here: what is inspected from now on is kept
                    self._kept.clear()
                    self._outdate()
                    self._live = True
                for event in events:
                    action = str(event.get("Action") or event.get("status") or "")
                    # "exec_start: sh -c ..." and the like carry their command after a colon.
                    listing = not action or action.split(":", 1)[0] in _MEMBERSHIP
                    with self._lock:
                        self._outdate(event.get("id") or "", listing=listing)
            except _DOCKER_ERRORS as exc:
                log.debug("docker event stream: %s", exc)
            with self._lock:
                self._live = False
                self._kept.clear()
                self._outdate()
            self._stop.wait(RECONNECT_SECONDS)
