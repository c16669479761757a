"""Scale to zero, carried out: services tagged ``slipway:idle-timeout`` go idle after
that long without requests, and wake on the next one (the rules: ``idle.py``).

Going idle: the service's route is *parked* on the waker (``Routes.park``), its
instances leave the route and drain as in a scale-in, then stop. The route stays, now
leading to the waker (``routing/waker.py``); the service stays RUNNING (App Runner has
no idle status), its ActiveInstances is 0, and the reconciler neither keeps it up to
MinSize nor scales it while it is parked.

Waking: the first request held by the waker starts a wake here, one per service, which
the requests that follow wait on. It starts MinSize instances of the live revision (at
least one) through the reconciler's ``start_live``, the path replacements and scale-outs
take (the image is on the host already: nothing is pulled), and once one is healthy
the route leads to it and the held requests are proxied to it. A wake that fails is
said in the events stream and answered 503; the next request tries again.

Activity is read from the router's counters as the scaler reads them: requests per
service (``Metrics.requests_total``, fed by HAProxy's counters or Caddy's access log)
and requests in flight per instance. Idle state lives as long as the agent: after a
restart an idle service is started again like any other and goes idle after its timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..backends import Backend, Instance
from ..config import Settings
from ..errors import ResourceNotFound, SlipwayError
from ..idle import TAG_IDLE_TIMEOUT, Quiet, WakeLimits, goes_idle, idle_timeout
from ..jobs import Jobs
from ..records import Service
from ..routing.router import Router
from ..routing.waker import Waker
from ..services import Services
from ..store import Store
from .journal import Journal
from .queue import OperationQueue
from .reconcile import Reconciler
from .routes import Routes
from .runner import Runner, Task, Wait

log = logging.getLogger("slipway.idle")

IDLE_JOB = "idle"
CLAIM_POLL = 0.1  # seconds between tries to take a busy service for its wake


class KeptNetworks(Protocol):
    """Services' networks (``backends/docker_networks.py``): an idle service keeps its
    own, so its wake does not make one again."""

    def keep_service(self, service_id: str, keep: bool) -> None: ...

    def release_service(self, service_id: str) -> None: ...


@dataclass
class _Asleep:
    """A service scaled to zero: ``idling`` (draining), ``idle`` or ``waking``."""

    phase: str
    since: float  # epoch seconds
    waking: Future[str] | None = None
    reason: str = ""


@dataclass
class _View:
    """The services and their idle timeouts as of one store mark."""

    mark: object = None
    services: dict[str, Service] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)
    by_host: dict[str, str] = field(default_factory=dict)


class Idler:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        services: Services,
        backend: Backend,
        router: Router,
        routes: Routes,
        reconciler: Reconciler,
        journal: Journal,
        queue: OperationQueue,
        runner: Runner,
        *,
        waker: list[str],
        limits: WakeLimits,
        requests: Callable[[], Mapping[str, int]],
        hosts: Callable[[], Mapping[str, str]],
        networks: KeptNetworks | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``waker``: where the waker may listen (``idle.waker_addresses``), ``limits``
        its bound and timeout; ``requests``: requests counted so far per
        service name; ``hosts``: host -> service name (custom domains too); ``networks``:
        None where instances have no network of their own (a cluster)."""
        self.store = store
        self.settings = settings
        self.services = services
        self.backend = backend
        self.router = router
        self.routes = routes
        self.reconciler = reconciler
        self.journal = journal
        self.queue = queue
        self.runner = runner
        self.waker = Waker(waker, self.wake_host, limits)  # the listener: start()
        self.requests = requests
        self.hosts = hosts
        self.networks = networks
        self.clock = clock
        self.quiet = Quiet()
        self._asleep: dict[str, _Asleep] = {}
        self._lock = threading.RLock()  # the waker's threads ask while the job looks
        self._view = _View()

    def schedule(self, jobs: Jobs) -> None:
        interval = self.settings.scale_interval
        jobs.every(IDLE_JOB, interval, self.check_once, first=interval)

    def start(self) -> None:
        """Listen for idle services' requests, and park again the services that were
        idle when the agent stopped: before any job runs, so none of them is started."""
        self.waker.start()
        running = {s.id for s in self.store.list_services() if s.status == "RUNNING"}
        for service_id, since in self.store.idle_services().items():
            if service_id not in running:
                self.store.clear_idle(service_id)
                continue
            self._asleep[service_id] = _Asleep("idle", since)
            self.routes.park(service_id, self.waker.address)
            self._keep_network(service_id, True)

    def stop(self) -> None:
        self.waker.stop()

    def state(self, name: str) -> dict[str, Any]:
        """The service ``name``'s idle timeout (None: it does not scale to zero) and
        when it went idle (epoch seconds; None while it serves or drains)."""
        view = self._look()
        service = next((s for s in view.services.values() if s.name == name), None)
        if service is None:
            raise ResourceNotFound(f"no service named {name}")  # as the CLI says it
        asleep = self._asleep.get(service.id)
        idle = asleep is not None and asleep.phase != "idling"
        return {
            "timeout": view.timeouts.get(service.id),
            "idle_since": asleep.since if idle else None,
        }

    # -- going idle -----------------------------------------------------------------

    def check_once(self) -> None:
        """One look at every service that may scale to zero."""
        view = self._look()
        for service_id in set(self._asleep) - set(view.services):
            self._drop(service_id, "the service is gone", release=True)
        if not view.timeouts and not self._asleep:
            return
        in_flight = self.router.upstream_requests()
        routed = self.router.routed()
        totals = self.requests()
        busy = self.reconciler.busy()
        now = self.clock()
        for service in view.services.values():
            timeout = view.timeouts.get(service.id)
            upstreams = routed.get(self.settings.service_host(service.hostname).lower(), ())
            if service.status == "OPERATION_IN_PROGRESS":  # an idle one stays parked
                continue
            if service.status != "RUNNING" or not service.live_deployment_id:
                self.quiet.forget(service.id)
                self._drop(service.id, f"the service is {service.status}")
                continue
            asleep = self._asleep.get(service.id)
            if asleep is not None:
                self._watch_asleep(service, asleep, timeout, upstreams)
                continue
            if timeout is None:
                self.quiet.forget(service.id)
                continue
            flight = sum(in_flight.get(a, 0) for a in upstreams)
            self.quiet.observe(service.id, totals.get(service.name, 0), flight, now)
            quiet = self.quiet.quiet_for(service.id, now)
            if (
                upstreams
                and service.id not in busy
                and goes_idle(timeout, quiet, flight)
                and self.queue.claim(service.id)
            ):
                self._asleep[service.id] = _Asleep("idling", time.time())
                reason = f"no request for {_span(quiet)} (slipway:idle-timeout {_span(timeout)})"
                self._spawn(service.id, self._go_idle(service, reason))

    def _look(self) -> _View:
        mark = self.store.changes()
        if self._view.mark != mark:
            services = {s.id: s for s in self.store.list_services()}
            values = self.store.tag_values(TAG_IDLE_TIMEOUT)
            timeouts = {}
            for s in services.values():
                seconds = idle_timeout({TAG_IDLE_TIMEOUT: values[s.arn]} if s.arn in values else {})
                if seconds is not None:
                    timeouts[s.id] = seconds
            by_name = {s.name: s.id for s in services.values()}
            by_host = {h: by_name[n] for h, n in self.hosts().items() if n in by_name}
            self._view = _View(mark, services, timeouts, by_host)
        return self._view

    def _watch_asleep(
        self, service: Service, asleep: _Asleep, timeout: float | None, upstreams: tuple[str, ...]
    ) -> None:
        if asleep.phase != "idle":
            return
        if any(a != self.waker.address for a in upstreams):  # a deployment or resume started some
            self._drop(service.id, "")
            self.quiet.restart(service.id, self.clock())
            self.journal.woke(service, len(upstreams), "an operation started its instances again")
        elif timeout is None:  # no longer scales to zero: back to MinSize at once
            self._start_wake(service.id, f"{TAG_IDLE_TIMEOUT} was removed")

    def _go_idle(self, service: Service, reason: str) -> Task:
        try:
            self.routes.park(service.id, self.waker.address)
            self._keep_network(service.id, True)
            serving = self.routes.serving(service, self.backend.list_instances(service.id))
            yield from self.routes.leave(serving)
            self.routes.apply()
        except SlipwayError as exc:
            self._drop(service.id, exc.message)
            self.journal.note(service.id, f"going idle failed: {exc.message}")
            return None
        self.journal.went_idle(service, len(serving), reason)
        with self._lock:
            asleep = self._asleep[service.id]
            asleep.phase, asleep.since = "idle", time.time()
            self.store.mark_idle(service.id, asleep.since)
            return asleep.waking  # a request came while it drained: wake once released

    def _spawn(self, service_id: str, task: Task) -> None:
        def ended(result: object, error: BaseException | None) -> None:
            if error is not None:
                log.error("idling service %s crashed", service_id, exc_info=error)
            self.queue.release(service_id)
            if result is not None:
                self._start_wake(service_id, "a request came in")

        self.runner.spawn(task, ended)

    def _keep_network(self, service_id: str, keep: bool) -> None:
        if self.networks is not None:
            self.networks.keep_service(service_id, keep)

    def _drop(self, service_id: str, why: str, *, release: bool = False) -> None:
        """Forget the idle state: the service serves again, or cannot be woken
        (``release``: it is gone, and its kept network with it)."""
        with self._lock:
            asleep = self._asleep.pop(service_id, None)
            self.routes.unpark(service_id)
        if asleep is not None:
            self.store.clear_idle(service_id)
            self._keep_network(service_id, False)
            if release and self.networks is not None:
                self.networks.release_service(service_id)
        if asleep is not None and asleep.waking is not None and not asleep.waking.done():
            asleep.waking.set_exception(SlipwayError(why))

    # -- waking ---------------------------------------------------------------------

    def wake_host(self, host: str) -> Future[str]:
        """A future of the address of a serving instance of ``host``'s service, woken
        if it is idle; one wake per service, however many requests ask."""
        service_id = self._look().by_host.get(host)
        if service_id is None:
            raise SlipwayError(f"no service answers for {host}")
        with self._lock:
            asleep = self._asleep.get(service_id)
            if asleep is None:  # awake: the router had not caught up with its route yet
                return self._serving_now(service_id)
            if asleep.waking is None:
                asleep.waking = Future()
            future = asleep.waking  # kept: a wake that fails at once clears it
            if asleep.phase == "idle":  # while it drains, the drain's end starts it
                self._start_wake(service_id, "a request came in")
            return future

    def _serving_now(self, service_id: str) -> Future[str]:
        future: Future[str] = Future()
        service = self._view.services[service_id]
        serving = self.routes.serving(service, self.backend.list_instances(service_id))
        if serving and serving[0].address:
            future.set_result(serving[0].address)
        else:
            future.set_exception(SlipwayError("no instance serves it"))
        return future

    def _start_wake(self, service_id: str, reason: str) -> None:
        with self._lock:
            asleep = self._asleep.get(service_id)
            if asleep is None or asleep.phase == "waking":
                return
            asleep.phase, asleep.reason = "waking", reason
            if asleep.waking is None:
                asleep.waking = Future()

        def ended(_result: object, error: BaseException | None) -> None:
            if error is not None:
                log.error("waking service %s crashed", service_id, exc_info=error)

        self.runner.spawn(self._wake(service_id, asleep), ended)

    def _wake(self, service_id: str, asleep: _Asleep) -> Task:
        begun = self.clock()
        while not self.queue.claim(service_id):  # an operation has it: wait for its end
            if self.clock() - begun > self.settings.wake_timeout:
                self._wake_failed(service_id, asleep, "the service stayed busy")
                return
            yield Wait(CLAIM_POLL)
        try:
            service = self.store.get_service(service_id)
            serving = self.routes.serving(service, self.backend.list_instances(service_id))
            if not serving:
                count = max(1, self.services.auto_scaling_for(service.spec)["min_size"])
                serving = yield from self.reconciler.start_live(
                    service, service.spec, count, "waking", ready=lambda i: _answer(asleep, i)
                )
            if not serving or not serving[0].address:
                raise SlipwayError("no instance became healthy")
        except SlipwayError as exc:
            self._wake_failed(service_id, asleep, exc.message)
            return
        finally:
            self.queue.release(service_id)
        with self._lock:
            self._asleep.pop(service_id, None)
            self.routes.unpark(service_id)
        self.store.clear_idle(service_id)
        self._keep_network(service_id, False)
        self.quiet.restart(service_id, self.clock())
        took = self.clock() - begun
        self.journal.woke(
            service,
            len(serving),
            f"{asleep.reason}; {len(serving)} instance(s) healthy in {took:.1f}s",
        )
        _answer(asleep, serving[0])

    def _wake_failed(self, service_id: str, asleep: _Asleep, message: str) -> None:
        with self._lock:
            asleep.phase = "idle"
            future, asleep.waking = asleep.waking, None
        service = self._view.services.get(service_id) or self.store.get_service(service_id)
        self.journal.wake_failed(service, message)
        if future is not None:
            future.set_exception(SlipwayError(message))


def _answer(asleep: _Asleep, instance: Instance) -> None:
    """The held requests go to ``instance`` (healthy), whether or not the route has
    reached it yet."""
    if asleep.waking is not None and not asleep.waking.done() and instance.address:
        asleep.waking.set_result(instance.address)


def _span(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:.0f}s"
