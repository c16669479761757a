"""The operation machinery wired together once, for the agent and for tests alike:
the runner its tasks wait on, the routes, the rollout (with its gradual steps), the
traffic splits, the dispatcher and the reconciler, and the jobs that drive them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .. import health
from ..backends import Backend
from ..config import Settings
from ..feedback import Feedback
from ..jobs import Jobs
from ..models import ServiceSpec
from ..observe.applogs import AppLogCollector
from ..records import Service
from ..releases import Builder, Git, SecretReader
from ..routing.router import Router
from ..services import Services
from ..sources.credentials import PullCredentials
from ..store import Store
from ..triggers import Found
from .dispatch import Dispatcher
from .gradual import Gradual
from .journal import Journal
from .queue import OperationQueue
from .reconcile import Reconciler
from .rollout import BUILD_LANE, PULL_LANE, Rollout
from .routes import Routes
from .runner import Runner
from .splits import Splits

DISPATCH_JOB = "dispatch"
RECONCILE_JOB = "reconcile"


class Operations:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        services: Services,
        backend: Backend,
        router: Router,
        journal: Journal,
        queue: OperationQueue,
        *,
        git: Git,
        builder: Builder,
        newest: Callable[[Service, ServiceSpec], Found],
        tokens: Callable[[ServiceSpec], str | None],
        feedback: Feedback,
        credentials: PullCredentials,
        secrets: SecretReader,
        applogs: AppLogCollector | None = None,
        runner: Runner | None = None,
        until_healthy: Callable[..., Iterator[float]] = health.until_healthy,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.runner = runner or Runner(
            steps=settings.operation_steps,
            lanes={BUILD_LANE: settings.build_concurrency, PULL_LANE: settings.pull_concurrency},
        )
        self.routes = Routes(store, backend, router, settings)
        self.rollout = Rollout(
            store,
            settings,
            services,
            backend,
            self.routes,
            journal,
            queue,
            git=git,
            builder=builder,
            newest=newest,
            tokens=tokens,
            feedback=feedback,
            credentials=credentials,
            secrets=secrets,
            until_healthy=until_healthy,
            gradual=Gradual(store, settings, backend, router, self.routes, journal, queue),
        )
        self.splits = Splits(
            store,
            settings,
            services,
            backend,
            self.routes,
            self.rollout,
            self.runner,
            queue,
            journal,
        )
        self.dispatcher = Dispatcher(
            store, settings, backend, queue, journal, self.rollout, self.runner, feedback
        )
        self.reconciler = Reconciler(
            store,
            settings,
            services,
            backend,
            router,
            self.routes,
            journal,
            queue,
            self.rollout,
            self.runner,
            applogs=applogs,
        )

    def schedule(self, jobs: Jobs) -> None:
        """Operations start as soon as they are queued; the reconcile pass runs every
        ``reconcile_interval``. Unfinished operations of an earlier agent go first."""
        self.dispatcher.recover()
        jobs.loop(DISPATCH_JOB, 1.0, self.dispatcher.dispatch_once, self.queue.wakeup)
        interval = self.settings.reconcile_interval
        jobs.every(RECONCILE_JOB, interval, self.reconciler.reconcile_once, first=interval)

    def problems(self) -> list[str]:
        """What ``/healthz`` should say about operations: ends the store refused, and a
        data plane that fails."""
        return self.dispatcher.problems() + self.reconciler.plane.problems()

    def stop(self) -> None:
        self.runner.stop()
