"""What each route should reach, and the instances held out of it.

A route reaches the running instances of its service's live deployment, less two
sets kept here: instances *joining* (started, not yet healthy) and *leaving*
(taken out, draining before they stop). The rule is pure (``desired_routes``);
``Routes`` reads the store and the backend and hands the result to the router.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Set
from dataclasses import replace

from ..backends import Backend, Instance
from ..config import Settings
from ..drain import drain_window
from ..errors import SlipwayError
from ..records import Service
from ..routing.router import ROUTE_CHANGE_SECONDS, Route, Router
from ..store import Store
from ..traffic import TAG_SEPARATOR, Split, instance_weights
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


def split_routes(
    service: Service,
    instances: list[Instance],
    split: Split,
    settings: Settings,
    exclude: Set[str],
    where: dict[str, bool],
) -> list[Route]:
    """The routes a service's ``split`` (``traffic.py``) adds or changes: its main host
    over the deployments it shares, weighted by their percents (when none of them has
    an instance in the route, the live one's instances take all), and each revision
    tag's host over its deployment's instances."""
    running: dict[str, list[str]] = {}
    for inst in instances:
        if inst.running and inst.address and inst.id not in exclude:
            running.setdefault(inst.deployment_id, []).append(inst.address)
    routes = []
    if split.shares:
        weights = instance_weights(split.shares, {d: running.get(d, []) for d in split.shares})
        if weights:
            upstreams = tuple(sorted(weights))
            weighted = tuple(sorted(weights.items()))
            host = settings.service_host(service.hostname)
            routes.append(Route(host=host, upstreams=upstreams, weights=weighted, **where))
    for tag, deployment in sorted(split.tags.items()):
        host = settings.service_host(f"{tag}{TAG_SEPARATOR}{service.hostname}")
        upstreams = tuple(sorted(running.get(deployment, [])))
        routes.append(Route(host=host, upstreams=upstreams, **where))
    return routes


def desired_routes(
    services: list[Service],
    instances: list[Instance],
    settings: Settings,
    exclude: frozenset[str] = frozenset(),
    ingress: Set[str] = frozenset(),
    parked: Mapping[str, str] | None = None,
    splits: Mapping[str, Split] | None = None,
) -> list[Route]:
    """Which upstreams each service host should reach (``serving_instances``, or its
    ``splits``' shares), and on which listener: a private service's only on the private
    one, and only with a VPC ingress connection (``ingress``: the ARNs of services that
    have one). A ``parked`` service (idle: service id -> the waker's address) with no
    instance serving reaches the waker. Pure, so the rule is testable with plain data."""
    splits = splits or {}
    routes = []
    grouped = by_service(instances)
    for service in services:
        if service.spec.worker:  # no port, no route (``workers.py``)
            continue
        host = settings.service_host(service.hostname)
        public = service.spec.network.publicly_accessible
        where = {
            "public": public,
            "private": not public and service.arn in ingress,
            "traced": service.spec.tracing,
        }
        split = splits.get(service.id, Split())
        if service.status == "PAUSED":
            routes.append(Route(host=host, upstreams=(), paused=True, **where))
            for tag in sorted(split.tags):
                tagged = settings.service_host(f"{tag}{TAG_SEPARATOR}{service.hostname}")
                routes.append(Route(host=tagged, upstreams=(), paused=True, **where))
            continue
        mine = grouped.get(service.id, [])
        extra = split_routes(service, mine, split, settings, exclude, where)
        if not extra or extra[0].host != host:
            serving = serving_instances(service, mine, exclude)
            upstreams = sorted(i.address or "" for i in serving)
            if not upstreams and parked and service.id in parked:
                upstreams = [parked[service.id]]
            routes.append(Route(host=host, upstreams=tuple(upstreams), **where))
        routes += extra
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
        self._parked: dict[str, str] = {}  # idle services -> the waker's address

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

    def park(self, service_id: str, waker: str) -> None:
        """Send the service's requests to ``waker`` whenever no instance of it serves
        (scale to zero), from the next apply until ``unpark``."""
        with self._lock:
            self._parked[service_id] = waker

    def unpark(self, service_id: str) -> None:
        with self._lock:
            self._parked.pop(service_id, None)

    def parked(self) -> set[str]:
        with self._lock:
            return set(self._parked)

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
            splits = self.store.list_splits()
            parked = dict(self._parked)
            self.router.apply(
                desired_routes(services, instances, self.settings, out, ingress, parked, splits)
            )

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
