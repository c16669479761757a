"""A deployment in steps, for a service with a rollout policy (resource tag
``slipway:rollout``, e.g. ``10,50,100/60s``): once the new revision's instances are
healthy they take 10% of the route's requests, then 50%, a pause each, while the new
revision's 5xx rate and p99 stay within bounds of the previous one's over the same
pause (``traffic.judge``, from the router's per-instance counters and latency samples;
a step that saw too few requests to judge goes on, up to ``EXTENSIONS`` pauses more);
then the rollout switches the route to it as any deployment does. Out of bounds, the
split goes back, the new instances drain and stop, and the deployment fails saying why.
Every step and its figures go to the events stream and the deployment's log.

The steps are a traffic split (``traffic.Split``) stored like one a user sets, so the
reconcile pass routes what the rollout routes, and an agent restarted mid-step finds
the old deployment still live and still in the route.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from ..backends import Backend, Instance
from ..config import Settings
from ..errors import SlipwayError
from ..records import Operation, Service
from ..routing.haproxytraffic import UpstreamServed
from ..routing.router import ROUTE_CHANGE_SECONDS, Router
from ..store import Store
from ..traffic import (
    TAG_ROLLOUT,
    Bounds,
    Figures,
    RolloutPolicy,
    Split,
    describe,
    judge,
    parse_policy,
)
from .journal import Journal
from .queue import OperationQueue
from .routes import Routes
from .runner import Task, Wait

STEP_POLL = 0.5  # seconds between looks at the new instances during a step
# Pauses a step is extended by while the new revision has too few requests to judge;
# then it advances on time (a service nobody calls must still deploy).
EXTENSIONS = 2


class RolledBack(SlipwayError):
    """A step of a rollout found the new revision out of bounds."""


class Gradual:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        backend: Backend,
        router: Router,
        routes: Routes,
        journal: Journal,
        queue: OperationQueue,
    ) -> None:
        self.store = store
        self.backend = backend
        self.router = router
        self.routes = routes
        self.journal = journal
        self.queue = queue
        self.bounds = Bounds(
            max_5xx_points=settings.rollout_max_5xx_points,
            max_p99_ratio=settings.rollout_max_p99_ratio,
            p99_slack_ms=settings.rollout_p99_slack_ms,
            min_requests=settings.rollout_min_requests,
        )

    def policy(self, service: Service) -> RolloutPolicy | None:
        value = self.store.get_tags(service.arn).get(TAG_ROLLOUT)
        return parse_policy(value) if value else None  # checked when it was tagged

    def advance(
        self, service: Service, op: Operation, revision: str, started: list[Instance]
    ) -> Task:
        """The steps below 100% of a service with a policy and a live deployment; nothing
        for others. Raises ``RolledBack`` (the new instances drained and stopped) when a
        step finds the new revision out of bounds."""
        policy = self.policy(service)
        old = service.live_deployment_id
        if policy is None or not old or len(policy.steps) == 1:
            return
        base = self.store.get_split(service.id)
        names = {**base.revisions, old: service.live_revision or "", op.id: revision}
        new = [i.address for i in started if i.address]
        try:
            for number, step in enumerate(policy.steps[:-1], 1):
                self.store.put_split(
                    service.id, Split({old: 100 - step, op.id: step}, dict(base.tags), names)
                )
                self.routes.apply()
                self._say(
                    service,
                    op,
                    f"rollout step {number} of {len(policy.steps)}: revision"
                    f" {revision[:19]} takes {step}% of requests for {policy.pause:g}s",
                )
                yield Wait(min(policy.pause, ROUTE_CHANGE_SECONDS))  # the router moved
                since = time.monotonic()
                before = self.router.upstream_served(since)
                olds = [i.address for i in self._instances(service.id, old) if i.address]
                for extension in range(EXTENSIONS + 1):
                    yield from self._pause(policy.pause, service.id, started)
                    after = self.router.upstream_served(since)
                    new_figures = figures(before, after, new)
                    old_figures = figures(before, after, olds)
                    short = new_figures.requests < self.bounds.min_requests
                    if not short or extension == EXTENSIONS or not after:
                        break
                    self._say(
                        service,
                        op,
                        f"rollout step {number} ({step}%): the new revision got"
                        f" {new_figures.requests} requests, fewer than rollout_min_requests"
                        f" ({self.bounds.min_requests}): the step goes on {policy.pause:g}s more",
                    )
                reason = judge(new_figures, old_figures, self.bounds)
                if reason is not None:
                    raise RolledBack(
                        f"rolled back at step {number} ({step}%): revision {revision[:19]}"
                        f" {reason}; revision {(service.live_revision or '')[:19]} serves all"
                        " requests again"
                    )
                self._say(service, op, self._passed(number, step, new_figures, old_figures))
        except RolledBack as exc:
            self._restore(service.id, base)
            self._say(service, op, exc.message)
            yield from self.routes.leave(started)
            raise
        except BaseException:
            self._restore(service.id, base)
            raise
        self._say(
            service,
            op,
            f"rollout step {len(policy.steps)}: revision {revision[:19]} takes all requests",
        )

    def _passed(self, number: int, step: int, new: Figures, old: Figures) -> str:
        if not new.requests and not old.requests:
            return (
                f"rollout step {number} ({step}%): the router counted no requests per"
                " revision (none came, or data_plane caddy counts none): advancing on time"
            )
        if new.requests < self.bounds.min_requests:
            return (
                f"rollout step {number} ({step}%): the new revision got {new.requests}"
                f" requests, fewer than rollout_min_requests ({self.bounds.min_requests}) to"
                " judge by: advancing on time"
            )
        return (
            f"rollout step {number} ({step}%) within bounds: new revision {describe(new)};"
            f" previous {describe(old)}"
        )

    def _pause(self, seconds: float, service_id: str, started: list[Instance]) -> Task:
        """Wait out a step, ending it early when a new instance stops or the operation
        is cancelled (``queue.check`` raises)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            yield Wait(min(STEP_POLL, left))
            self.queue.check(service_id)
            for inst in started:
                now = self.backend.get_instance(inst.id)
                if now is None or not now.running or now.restart_count > inst.restart_count:
                    raise RolledBack(
                        f"rolled back: instance {inst.name} of the new revision stopped"
                        " during a rollout step"
                    )

    def _instances(self, service_id: str, deployment_id: str) -> list[Instance]:
        return [
            i
            for i in self.backend.list_instances(service_id)
            if i.deployment_id == deployment_id and i.running
        ]

    def _restore(self, service_id: str, base: Split) -> None:
        self.store.put_split(service_id, base)
        self.routes.apply()

    def _say(self, service: Service, op: Operation, message: str) -> None:
        self.journal.note(service.id, message)
        self.journal.deploy_log(op, f"[AppRunner] {message}")


def figures(
    before: dict[str, UpstreamServed], after: dict[str, UpstreamServed], addresses: Iterable[str]
) -> Figures:
    """What ``addresses`` answered between two readings of the router's counters (a
    server counted from zero again, when re-added, counts from its new start)."""
    requests = errors = 0
    latencies: list[float] = []
    for address in addresses:
        now = after.get(address)
        if now is None:
            continue
        then = before.get(address, UpstreamServed())
        if now.requests < then.requests:
            then = UpstreamServed()
        requests += now.requests - then.requests
        errors += max(0, now.errors - then.errors)
        latencies += now.latencies
    return Figures(requests, errors, tuple(latencies))
