"""What each route should reach, and the instances held out of it.

A route reaches the running instances of its service's live deployment, less two
sets kept here: instances *joining* (started, not yet healthy) and *leaving*
(taken out, draining before they stop). The rule is pure (``desired_routes``);
``Routes`` reads the store and the backend and hands the result to the router.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Set
from dataclasses import replace

from ..backends import Backend, Instance
from ..config import Settings
from ..drain import drain_window
from ..errors import SlipwayError
from ..records import Service
from ..routing.router import ROUTE_CHANGE_SECONDS, Route, Router
from ..store import Store
from .runner import Task, Wait

DRAIN_POLL = 0.25  # seconds between looks at a leaving instance's requests in flight


def by_service(instances: list[Instance]) -> dict[str, list[Instance]]:
    """Instances grouped by their service: a pass over every service then looks at each
    instance once, not once per service."""
    grouped: dict[str, list[Instance]] = {}
    for inst in instances:
        grouped.setdefault(inst.service_id, []).append(inst)
    return grouped


def live_instances(service: Service, instances: list[Instance]) -> list[Instance]:
    """The instances of the service's live deployment, in any state."""
    return [
        i
        for i in instances
        if i.service_id == service.id and i.deployment_id == service.live_deployment_id
    ]


def serving_instances(
    service: Service, instances: list[Instance], exclude: Set[str] = frozenset()
) -> list[Instance]:
    """The instances a service's route reaches: running ones of its live deployment,
    less ``exclude`` (instances not yet healthy, or draining)."""
    if not service.live_deployment_id:
        return []
    return [
        i
        for i in live_instances(service, instances)
        if i.running and i.address and i.id not in exclude
    ]


def desired_routes(
    services: list[Service],
    instances: list[Instance],
    settings: Settings,
    exclude: frozenset[str] = frozenset(),
    ingress: Set[str] = frozenset(),
) -> list[Route]:
    """Which upstreams each service host should reach (``serving_instances``), and on
    which listener: a private service's only on the private one, and only with a VPC
    ingress connection (``ingress``: the ARNs of services that have one). Pure, so the
    rule is testable with plain data."""
    routes = []
    grouped = by_service(instances)
    for service in services:
        host = settings.service_host(service.hostname)
        public = service.spec.network.publicly_accessible
        where = {
            "public": public,
            "private": not public and service.arn in ingress,
            "traced": service.spec.tracing,
        }
        if service.status == "PAUSED":
            routes.append(Route(host=host, upstreams=(), paused=True, **where))
            continue
        serving = serving_instances(service, grouped.get(service.id, []), exclude)
        upstreams = sorted(i.address or "" for i in serving)
        routes.append(Route(host=host, upstreams=tuple(upstreams), **where))
    return routes


class Routes:
    def __init__(self, store: Store, backend: Backend, router: Router, settings: Settings) -> None:
        self.store = store
        self.backend = backend
        self.router = router
        self.settings = settings
        self._lock = threading.Lock()
        self._joining: set[str] = set()
        self._leaving: set[str] = set()
        self._withdrawn: set[str] = set()  # services out of the router, whatever the store says
        self._pausing: set[str] = set()  # services answered as paused, whatever it says

    def withdraw(self, service_id: str) -> None:
        """Take the service's route out now and keep it out of every apply (a reconcile
        pass's too) until ``restore``: a service being deleted stops answering before
        it is said DELETED, and no pass in between puts its route back."""
        with self._lock:
            self._withdrawn.add(service_id)
        self.apply()

    def pause(self, service_id: str) -> None:
        """Answer for the service as paused now, before its instances go and before the
        store says PAUSED, until ``restore``: no request meets an instance stopping."""
        with self._lock:
            self._pausing.add(service_id)
        self.apply()

    def restore(self, service_id: str) -> None:
        with self._lock:
            self._withdrawn.discard(service_id)
            self._pausing.discard(service_id)

    def apply(self, *, instances: list[Instance] | None = None) -> None:
        """Make the router match the store, less the withdrawn services. ``instances``:
        a listing the caller has just taken, so a reconcile pass lists the containers
        once."""
        with self._lock:
            withdrawn = self._withdrawn
            services = [
                replace(s, status="PAUSED") if s.id in self._pausing else s
                for s in self.store.list_services()
                if s.id not in withdrawn
            ]
            if instances is None:
                instances = self.backend.list_instances()
            out = frozenset(self._joining | self._leaving)
            ingress = {r["service_arn"] for r in self.store.list_vpc_ingress()}
            self.router.apply(desired_routes(services, instances, self.settings, out, ingress))

    def serving(self, service: Service, instances: list[Instance]) -> list[Instance]:
        """The live instances in the service's route now."""
        with self._lock:
            out = self._joining | self._leaving
        return serving_instances(service, instances, out)

    def start_joining(self, start: Callable[[], Instance]) -> Instance:
        """Start an instance of a live deployment held out of its route until
        ``joined``; held together so no route is written between the two."""
        with self._lock:
            inst = start()
            self._joining.add(inst.id)
        return inst

    def joined(self, instance_id: str) -> None:
        with self._lock:
            self._joining.discard(instance_id)

    def drain_window(self, service_id: str) -> float:
        """Seconds the service's instances out of its route may keep serving what they
        carry: its ``slipway:drain-seconds`` tag, else ``drain_seconds`` (``drain.py``)."""
        service = self.store.get_service(service_id)
        tags = self.store.get_tags(service.arn) if service is not None else {}
        return drain_window(tags, self.settings.drain_seconds)

    def drained(
        self, addresses: Set[str | None], seconds: float, check: Callable[[], None] = lambda: None
    ) -> Task:
        """Wait until no request, WebSocket or stream is in flight to ``addresses``
        (instances out of the route), at most ``seconds``: first for the router to stop
        sending them new ones (Caddy until its route DNS answer expires), then while
        its in-flight counts say they still carry something; ``check`` after each
        wait (an operation cancelled meanwhile raises there). Returns how many they
        still carried when the window ended (0: drained; unknown counts read as 0)."""
        deadline = time.monotonic() + seconds
        yield Wait(min(seconds, ROUTE_CHANGE_SECONDS))
        check()
        while True:
            try:
                flights = self.router.upstream_requests()
            except SlipwayError:
                return 0
            left = sum(flights.get(a or "", 0) for a in addresses)
            if not left or time.monotonic() >= deadline:
                return left
            yield Wait(min(DRAIN_POLL, max(0.0, deadline - time.monotonic())))
            check()

    def leave(self, leaving: list[Instance]) -> Task:
        """Take instances out of the route, let what they carry finish (up to their
        service's drain window), then stop them."""
        if not leaving:
            return
        ids = {i.id for i in leaving}
        with self._lock:
            self._leaving |= ids
        try:
            self.apply()
            window = max(self.drain_window(s) for s in {i.service_id for i in leaving})
            yield from self.drained({i.address for i in leaving}, window)
            for inst in leaving:
                self.backend.stop_instance(inst.id, timeout=10)
        finally:
            with self._lock:
                self._leaving -= ids
