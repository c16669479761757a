"""Auto scaling by request concurrency.

Caddy counts the requests in flight to each upstream (``Router.upstream_requests``);
sampled every ``scale_interval`` seconds, they say how many instances a service
needs: in-flight requests over MaxConcurrency, between MinSize and MaxSize. A
service scales out when every sample of the last ``scale_out_window`` seconds asks
for more instances than serve, so a burst of one sample does not start containers;
it scales in when no sample of the last ``scale_in_cooldown`` seconds asked for as
many as serve, and not sooner than that after its last scaling action. Idle
instances above MinSize are the ones that go. What all instances reserve together
stays under the host's capacity (on a cluster, what its nodes have left, node by
node): a scale-out that would pass it is refused, and said so once. Decisions are
pure (``Autoscaler``); ``Scaler`` samples (a job every ``scale_interval``) and asks
the reconciler to act.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .backends import Backend, Instance
from .backends.swarm_placement import NodeRoom
from .config import Settings
from .models import ServiceSpec
from .operations.journal import Journal
from .operations.reconcile import Reconciler
from .records import Service
from .routing.router import Router
from .services import Services
from .store import Store

log = logging.getLogger("slipway.scaling")


def needed(in_flight: int, max_concurrency: int, min_size: int, max_size: int) -> int:
    """Instances that carry ``in_flight`` requests at MaxConcurrency each."""
    return max(min_size, min(max_size, math.ceil(in_flight / max(1, max_concurrency))))


@dataclass
class _Run:
    """Consecutive samples that asked for the same count: a steady service keeps one run,
    not a sample a second (60 per service with the default cool-down, scanned each
    second by ``decide``)."""

    first: float
    last: float
    need: int


@dataclass
class _History:
    runs: deque[_Run] = field(default_factory=deque)  # oldest first
    since: float | None = None  # first sample since the last action or forget

    def needs_since(self, cutoff: float) -> list[int]:
        """What the samples taken at ``cutoff`` or later asked for, one entry per run."""
        return [run.need for run in self.runs if run.last >= cutoff]


@dataclass
class Autoscaler:
    """Per-service sample windows and the scaling decision over them."""

    out_window: float
    in_cooldown: float
    _history: dict[str, _History] = field(default_factory=dict)
    _last_action: dict[str, float] = field(default_factory=dict)

    def observe(self, service_id: str, need: int, now: float) -> None:
        history = self._history.setdefault(service_id, _History())
        if history.since is None:
            history.since = now
        runs = history.runs
        if runs and runs[-1].need == need:
            runs[-1].last = now
        else:
            runs.append(_Run(now, now, need))
        horizon = now - max(self.out_window, self.in_cooldown)
        while runs and runs[0].last < horizon:
            runs.popleft()

    def decide(self, service_id: str, serving: int, now: float) -> int | None:
        """The instance count to move to, or None to stay."""
        history = self._history.get(service_id)
        if history is None or history.since is None or not history.runs:
            return None
        if now - history.since >= self.out_window:
            recent = history.needs_since(now - self.out_window)
            if recent and min(recent) > serving:
                return min(recent)
        last = self._last_action.get(service_id)
        if now - history.since >= self.in_cooldown and (
            last is None or now - last >= self.in_cooldown
        ):
            window = history.needs_since(now - self.in_cooldown)
            if window and max(window) < serving:
                return max(window)
        return None

    def acted(self, service_id: str, now: float) -> None:
        """A scaling action began: later decisions look only at what follows it."""
        self._last_action[service_id] = now
        self.forget(service_id)

    def forget(self, service_id: str) -> None:
        self._history.pop(service_id, None)


@dataclass(frozen=True)
class Capacity:
    """What all instances together may reserve: CPU units (1024 = 1 vCPU) and MB."""

    cpu: int
    memory: int

    @classmethod
    def of_host(cls, settings: Settings) -> Capacity:
        cpu = settings.capacity_cpu or (os.cpu_count() or 1) * 1024
        memory = settings.capacity_memory or (
            os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
        )
        return cls(cpu, memory)

    def room(self, reserved: tuple[int, int], each: tuple[int, int]) -> int:
        """How many more instances of size ``each`` fit next to ``reserved``."""
        cpu_left, memory_left = self.cpu - reserved[0], self.memory - reserved[1]
        if cpu_left < 0 or memory_left < 0:
            return 0
        return min(cpu_left // max(1, each[0]), memory_left // max(1, each[1]))

    def room_for(
        self, services: list[Service], instances: list[Instance], each: tuple[int, int]
    ) -> tuple[int, str]:
        """How many more instances of size ``each`` fit, and the capacity, in words."""
        room = self.room(reserved(services, instances), each)
        return room, f"the host's capacity ({self.cpu} CPU units, {self.memory} MB)"


@dataclass(frozen=True)
class ClusterCapacity:
    """``backend: swarm``: what the cluster's nodes that may take an instance have left
    (``rooms``: ready, active, within the constraints; less every task's reservations,
    slipway's or not). Instances fit node by node, as Swarm places them."""

    rooms: Callable[[], list[NodeRoom]]

    def room_for(
        self, services: list[Service], instances: list[Instance], each: tuple[int, int]
    ) -> tuple[int, str]:
        """How many more instances of size ``each`` fit, and the capacity, in words."""
        rooms = self.rooms()
        room = sum(r.fits(*each) for r in rooms)
        cpu, memory = sum(r.cpu_total for r in rooms), sum(r.memory_total for r in rooms)
        return room, (
            f"the cluster's capacity ({len(rooms)} ready node(s), {cpu} CPU units, {memory} MB)"
        )


def reserved(services: list[Service], instances: list[Instance]) -> tuple[int, int]:
    """CPU units and MB that the running instances of all services reserve."""
    sizes = {}
    for service in services:
        spec = service.spec
        sizes[service.id] = (int(spec.instance.cpu), int(spec.instance.memory))
    cpu = memory = 0
    for inst in instances:
        if inst.state in ("running", "restarting", "created") and inst.service_id in sizes:
            cpu += sizes[inst.service_id][0]
            memory += sizes[inst.service_id][1]
    return cpu, memory


class Scaler:
    """Samples Caddy's in-flight counts and has the reconciler add or remove instances."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        services: Services,
        router: Router,
        backend: Backend,
        reconciler: Reconciler,
        journal: Journal,
        clock: Callable[[], float] = time.monotonic,
        capacity: Capacity | ClusterCapacity | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.services = services
        self.router = router
        self.backend = backend
        self.reconciler = reconciler
        self.journal = journal
        self.clock = clock
        self.capacity = capacity or Capacity.of_host(settings)
        self.decisions = Autoscaler(settings.scale_out_window, settings.scale_in_cooldown)
        self._refused: set[str] = set()  # services told that the host is full
        self._services: tuple[object, list[Service]] = (None, [])  # as of a store mark

    def sample_once(self) -> None:
        """One look at every running service. The instances serving are those of its
        route as last applied, so a sample asks docker nothing; only a scale-out reads
        the containers, for the host's capacity."""
        in_flight = self.router.upstream_requests()
        routed = self.router.routed()
        now = self.clock()
        mark = self.store.changes()
        if self._services[0] != mark:  # read again only when the store moved
            self._services = (mark, self.store.list_services())
        services = self._services[1]
        busy = self.reconciler.busy()
        instances: list[Instance] | None = None
        auto_scaling_for = self.services.auto_scaling_lookup()
        for service in services:
            upstreams = routed.get(self.settings.service_host(service.hostname).lower())
            if (
                service.status != "RUNNING"
                or not service.live_deployment_id
                or service.id in busy
                or not upstreams
            ):
                self.decisions.forget(service.id)
                continue
            spec = service.spec
            asc = auto_scaling_for(spec)
            serving = len(upstreams)
            flight = sum(in_flight.get(address, 0) for address in upstreams)
            need = needed(flight, asc["max_concurrency"], asc["min_size"], asc["max_size"])
            self.decisions.observe(service.id, need, now)
            target = self.decisions.decide(service.id, serving, now)
            if target is None:
                continue
            reason = (
                f"{flight} request(s) in flight on {serving} instance(s),"
                f" MaxConcurrency {asc['max_concurrency']}"
            )
            if target > serving:
                if instances is None:
                    instances = self.backend.list_instances()
                target = self._within_capacity(service, spec, services, instances, serving, target)
                if target <= serving:
                    continue
            if self.reconciler.scale(service, target, reason):
                self.decisions.acted(service.id, now)

    def _within_capacity(
        self,
        service: Service,
        spec: ServiceSpec,
        services: list[Service],
        instances: list[Instance],
        serving: int,
        target: int,
    ) -> int:
        each = (int(spec.instance.cpu), int(spec.instance.memory))
        room, capacity = self.capacity.room_for(services, instances, each)
        if serving + room >= target:
            self._refused.discard(service.id)
            return target
        if service.id not in self._refused:
            self._refused.add(service.id)
            message = (
                f"scaling out to {target} instances refused: {capacity} is reserved;"
                f" {serving + room} instance(s) fit"
            )
            self.journal.scaling_refused(service, serving, target, message)
        return serving + room
