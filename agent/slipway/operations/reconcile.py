"""Converges what runs on what the store says should: routes, stray containers, and
the live instances of running services (crashed, missing or unhealthy ones are
replaced). Also the actuator of scaling moves. A restart of the agent, dockerd or
Caddy heals by itself through ``reconcile_once``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from .. import health
from ..backends import Backend, Instance
from ..config import Settings
from ..errors import SlipwayError
from ..models import HealthCheck, ServiceSpec
from ..observe.applogs import AppLogCollector
from ..records import Service
from ..releases import Release
from ..routing.router import Router
from ..services import Services
from ..store import Store
from ..upkeep import Upkeep
from .journal import Journal
from .planewatch import PlaneWatch
from .queue import ACTIVE_STATUSES, OperationQueue
from .rollout import Rollout, instance_spec
from .routes import Routes, by_service, live_instances
from .runner import Runner, Task

log = logging.getLogger("slipway.operations")

PROBES = 16  # health checks of live instances at once


def stray_instances(
    services: list[Service],
    instances: list[Instance],
    busy: set[str],
    kept: Mapping[str, set[str]] | None = None,
) -> list[Instance]:
    """Instances that nothing should be running: of deleted or paused services, or of a
    deployment that is neither live nor ``kept`` (service id -> the deployments its
    traffic split or revision tags reach), for services with no operation under way."""
    kept = kept or {}
    by_id = {s.id: s for s in services}
    strays = []
    for inst in instances:
        service = by_id.get(inst.service_id)
        if service is None or inst.service_id in busy:
            continue
        if service.status in ("DELETED", "PAUSED") or (
            inst.deployment_id != service.live_deployment_id
            and inst.deployment_id not in kept.get(service.id, ())
        ):
            strays.append(inst)
    return strays


class Reconciler:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        services: Services,
        backend: Backend,
        router: Router,
        routes: Routes,
        journal: Journal,
        queue: OperationQueue,
        rollout: Rollout,
        runner: Runner,
        applogs: AppLogCollector | None = None,
        plane: PlaneWatch | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.services = services
        self.backend = backend
        self.router = router
        self.routes = routes
        self.journal = journal
        self.queue = queue
        self.rollout = rollout
        self.runner = runner
        self.applogs = applogs
        self.plane = plane or PlaneWatch(store, journal)
        # One per service: an upkeep forgets the instances it is not shown.
        self.upkeeps: dict[str, Upkeep] = {}
        self._probes = ThreadPoolExecutor(max_workers=PROBES, thread_name_prefix="slipway-probe")
        self._probed: dict[str, float] = {}  # service id -> when its live instances were probed
        self.pace = settings.reconcile_pace
        self.pace.check()
        # What the last full pass read and kept up (``reconcile_once``).
        self._last_mark: tuple[object, ...] | None = None
        self._full_due = 0.0
        self._own: frozenset[str] = frozenset()  # ids of the services in the store
        self._operating: tuple[object, frozenset[str]] = (None, frozenset())  # ``busy``
        self._kept: list[Service] = []
        self._live: dict[str, list[Instance]] = {}

    def busy(self) -> set[str]:
        """Services with an operation, replacement or scaling move under way, and idle
        ones (scaled to zero: neither kept up to MinSize nor scaled)."""
        mark = self.store.changes()
        if self._operating[0] != mark:  # the active operations as of the store's mark
            operating = {
                op.service_id for op in self.store.operations_with_status(*ACTIVE_STATUSES)
            }
            self._operating = (mark, frozenset(operating))
        return self.queue.busy() | self._operating[1] | self.routes.parked()

    def reconcile_once(self) -> None:
        """A full pass when anything it reads moved since the last one (the store, this
        agent's containers, the work under way), and at least every
        ``reconcile_full_interval``; in between, only the health checks that are due.
        With 100 idle services the full pass every 2 s was half the agent's idle CPU
        (the bulk bench), for nothing: the same routes, no strays, the same instances."""
        seen = (self.store.changes(), frozenset(self.queue.busy()))
        instances = self.backend.list_instances()
        if self._mark(seen, instances) == self._last_mark and time.monotonic() < self._full_due:
            self._check_health()
            return
        started = time.monotonic()
        if self._full_pass(instances):  # one the router failed comes again next pass
            self._full_due = started + self.pace.full_interval
            self._last_mark = self._mark(seen, instances)  # with the services it read

    def _mark(self, seen: tuple[object, ...], instances: list[Instance]) -> tuple[object, ...]:
        """What a full pass reads, cheaply (``seen``: the store's mark and the work under
        way, taken before the listing): a pass that finds the same mark would decide the
        same. Instances of services the store does not hold (another agent's, on a shared
        host) are left out, so their comings and goings do not count."""
        own = self._own
        return (*seen, tuple(i for i in instances if i.service_id in own))

    def _full_pass(self, instances: list[Instance]) -> bool:
        """False when the data plane failed: what it serves stays, the pass comes again."""
        problem = None
        try:
            self.router.keep_route_dns()
        except SlipwayError as exc:  # the router keeps what it serves; tried again next pass
            log.warning("data plane: %s", exc.message)
            problem = exc.message
        try:
            self.routes.apply(instances=instances)
        except SlipwayError as exc:  # what was applied before keeps serving
            log.warning("routes: %s", exc.message)
            problem = problem or exc.message
        self.plane.observe(problem)
        busy = self.busy()
        services = self.store.list_services(include_deleted=True)
        self._own = frozenset(s.id for s in services)
        if self.applogs is not None:  # this agent's instances only, not the host's
            self.applogs.sync([i for i in instances if i.service_id in self._own])
        kept = {sid: split.kept() for sid, split in self.store.list_splits().items()}
        for inst in stray_instances(services, instances, busy, kept):
            log.info("stopping stray instance %s", inst.name)
            self.backend.stop_instance(inst.id, timeout=10)
        kept = [
            s
            for s in services
            if s.status == "RUNNING" and s.live_deployment_id and s.id not in busy
        ]
        grouped = by_service(instances)
        live = {s.id: live_instances(s, grouped.get(s.id, [])) for s in kept}
        self._kept, self._live = kept, live
        healthy = self._probe_due(kept, live)
        auto_scaling_for = self.services.auto_scaling_lookup()
        present = {s.id for s in services if s.status != "DELETED"}
        self.upkeeps = {k: v for k, v in self.upkeeps.items() if k in present}
        for service in kept:
            floor = auto_scaling_for(service.spec)["min_size"]
            self._keep_up(service, live[service.id], healthy, floor)
        return problem is None

    def _check_health(self) -> None:
        """The due health checks of the services the last full pass kept up, and what
        the upkeep makes of them. Nothing else can have changed for the others: their
        instances and records are as that pass saw them."""
        healthy = self._probe_due(self._kept, self._live)
        if not healthy:
            return
        auto_scaling_for = self.services.auto_scaling_lookup()
        for service in self._kept:
            live = self._live[service.id]
            if any(inst.id in healthy for inst in live):
                floor = auto_scaling_for(service.spec)["min_size"]
                self._keep_up(service, live, healthy, floor)

    def _probe_due(
        self, services: list[Service], live: dict[str, list[Instance]]
    ) -> dict[str, bool]:
        """One health check of each live instance of the services whose interval has
        passed, all at once: a TCP check waits up to 0.2 s to see a hang-up, so one after
        another, 100 services would hold a reconcile pass for seconds. TCP checks share
        one thread (``probe_tcp_many``); HTTP checks run on the probe threads."""
        now = time.monotonic()
        due: list[tuple[Instance, HealthCheck]] = []
        for service in services:
            hc = service.spec.health
            if now - self._probed.get(service.id, 0.0) < hc.interval:
                continue
            self._probed[service.id] = now
            due += [
                (inst, hc)
                for inst in live[service.id]
                if inst.running and inst.host_ip and inst.host_port
            ]

        tcp = [(inst, hc) for inst, hc in due if hc.protocol.upper() == "TCP"]
        http = [(inst, hc) for inst, hc in due if hc.protocol.upper() != "TCP"]

        def probe(item: tuple[Instance, HealthCheck]) -> bool:
            inst, hc = item
            return health.probe(inst.host_ip, inst.host_port, hc.protocol, hc.path, hc.timeout)[0]

        answers = self._probes.map(probe, http)  # HTTP checks on threads, meanwhile
        tcp_ok = health.probe_tcp_many([(i.host_ip, i.host_port, hc.timeout) for i, hc in tcp])
        return {
            **{inst.id: ok for (inst, _), ok in zip(tcp, tcp_ok, strict=True)},
            **{inst.id: ok for (inst, _), ok in zip(http, answers, strict=True)},
        }

    def _keep_up(
        self, service: Service, live: list[Instance], healthy: dict[str, bool], floor: int
    ) -> None:
        """Report crashes of live instances; replace dead, missing or unhealthy ones, to
        keep at least ``floor`` (the service's MinSize)."""
        spec = service.spec
        upkeep = self.upkeeps.setdefault(service.id, Upkeep())
        verdict = upkeep.judge(live, healthy, floor, spec.health.unhealthy_threshold)
        for report in verdict.reports:
            self.journal.note(service.id, report)
        if (verdict.replace or verdict.missing) and self.queue.claim(service.id):
            self._spawn(
                service.id, self._replace(service, spec, list(verdict.replace), verdict.missing)
            )

    def _spawn(self, service_id: str, task: Task) -> None:
        def ended(_result: object, error: BaseException | None) -> None:
            if error is not None:
                log.error("work on service %s crashed", service_id, exc_info=error)
            self.queue.release(service_id)

        self.runner.spawn(task, ended)

    def _replace(
        self, service: Service, spec: ServiceSpec, bad: list[Instance], missing: int
    ) -> Task:
        """Fresh instances of the live revision join the route once healthy; then the
        bad ones leave it and stop."""
        try:
            started = yield from self.start_live(service, spec, len(bad) + missing, "replacement")
            for inst in started:
                self.journal.note(service.id, f"instance {inst.name} replaces a lost one")
            if len(started) == len(bad) + missing:
                yield from self.routes.leave(bad)
        except SlipwayError as exc:
            self.journal.note(service.id, f"cannot replace instances: {exc.message}")

    def start_live(
        self,
        service: Service,
        spec: ServiceSpec,
        count: int,
        what: str,
        ready: Callable[[Instance], None] | None = None,
    ) -> Task:
        """Start ``count`` instances of the live revision side by side; each joins the
        route once healthy (``ready`` is told at once: a wake's held requests need not
        wait for the route). Returns those that did; one that fails is stopped and said."""
        rows = [
            r
            for r in self.store.list_revisions(service.id)
            if r.revision == service.live_revision and r.detail
        ]
        if not rows or count <= 0:
            return []
        release = Release.from_dict(rows[0].detail)
        env = self.rollout.instance_env(service, spec, release)
        base = int(time.time() * 1000) % 10**9
        started: list[Instance] = []
        try:
            for n in range(count):
                spec_n = instance_spec(
                    service, spec, release, env, service.live_deployment_id, base + n
                )
                started.append(
                    self.routes.start_joining(lambda s=spec_n: self.backend.start_instance(s))
                )
        except SlipwayError:
            for inst in started:
                self.backend.stop_instance(inst.id, timeout=2)
                self.routes.joined(inst.id)
            raise
        healthy = []
        for inst in started:
            try:
                yield from self.rollout.wait_healthy(inst, spec, release.port, service.id)
                healthy.append(inst)
                if ready is not None:
                    ready(inst)
            except SlipwayError as exc:
                self.backend.stop_instance(inst.id, timeout=2)
                self.journal.note(service.id, f"{what} instance failed: {exc.message}")
            finally:
                self.routes.joined(inst.id)
        if healthy:
            self.routes.apply()
        return healthy

    # -- scaling --------------------------------------------------------------------

    def scale(self, service: Service, target: int, reason: str) -> bool:
        """Move the service to ``target`` serving instances in the background; False when
        something else is under way for it."""
        if not self.queue.claim(service.id):
            return False
        self._spawn(service.id, self._scale(service, target, reason))
        return True

    def _scale(self, service: Service, target: int, reason: str) -> Task:
        try:
            service = self.store.get_service(service.id)
            spec = service.spec
            serving = self.routes.serving(service, self.backend.list_instances(service.id))
            before = len(serving)
            if target > before:
                started = yield from self.start_live(service, spec, target - before, "new")
                after = before + len(started)
            elif target < before:
                try:
                    flights = self.router.upstream_requests()
                except SlipwayError:
                    flights = {}
                # The idlest go first, the newest of equals.
                ranked = sorted(serving, key=lambda i: i.started_at or "", reverse=True)
                ranked.sort(key=lambda i: flights.get(i.address or "", 0))
                yield from self.routes.leave(ranked[: before - target])
                after = target
            else:
                return
            if after != before:
                self.journal.scaled(service, before, after, reason)
        except SlipwayError as exc:
            self.journal.note(service.id, f"scaling to {target} instances failed: {exc.message}")
