"""What each operation does to containers and routes, as tasks that wait without a
thread (``runner.py``): a deployment fetches and builds its release (in the build
lane), starts new instances beside the old, waits until each is healthy, switches the
route, and watches the new ones through the settle window while the old drain. On any
failure the old keep or resume serving.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial

from .. import health
from ..backends import Backend, Instance, InstanceSpec
from ..config import Settings
from ..errors import SlipwayError
from ..feedback import Feedback
from ..models import ServiceSpec
from ..observe.tracing import instance_env as otel_env
from ..observe.tracing import resource_attributes
from ..records import Operation, Revision, Service
from ..releases import Builder, Git, Release, SecretReader, code_release, image_release
from ..services import Services
from ..sources.credentials import PullCredentials
from ..store import Store
from ..triggers import Found
from ..workers import SINGLE
from .gradual import Gradual
from .journal import Journal
from .queue import OperationQueue
from .routes import Routes, live_instances
from .runner import Offload, Task, Wait
from .worker_rollout import stays_up, stop_first

SETTLE_POLL = 0.5  # seconds between looks at new instances in the settle window
BUILD_LANE = "build"
PULL_LANE = "pull"


class Rollout:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        services: Services,
        backend: Backend,
        routes: Routes,
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
        until_healthy: Callable[..., Iterator[float]] = health.until_healthy,
        gradual: Gradual | None = None,
    ) -> None:
        self.gradual = gradual  # rollout policies' steps (``gradual.py``)
        self.credentials = credentials
        self.secrets = secrets
        self.until_healthy = until_healthy  # probes, yielding the waits between them
        self.store = store
        self.settings = settings
        self.services = services
        self.backend = backend
        self.routes = routes
        self.journal = journal
        self.queue = queue
        self.git = git
        self.builder = builder
        self.newest = newest
        self.tokens = tokens
        self.feedback = feedback

    def execute(self, op: Operation, service: Service) -> Task:
        """Carry out one operation; its result is the message it ends with."""
        kind = op.type
        spec = service.spec
        if kind == "PAUSE_SERVICE":
            # Answered as paused first, then drained and stopped: no request meets an
            # instance stopping under it (a 502), none a route not yet paused.
            self.routes.pause(service.id)
            try:
                yield from self.routes.leave(self.backend.list_instances(service.id))
            except BaseException:  # a failed or cancelled pause gets its route back
                self.routes.restore(service.id)
                self.routes.apply()
                raise
            self.store.update_service(service.id, status="PAUSED")
            self.routes.restore(service.id)  # PAUSED keeps it paused from here
            self.journal.service_status(service, service.status, "PAUSED")
            return "service paused"
        if kind == "DELETE_SERVICE":
            return (yield from self._delete(service, spec))
        if kind == "UPDATE_SERVICE":
            spec = ServiceSpec.from_dict(op.params["spec"])
        release = yield from self._release(op, service, spec)
        yield from self.roll_out(service, spec, release, op)
        return f"revision {release.revision} is live"

    # -- releases ---------------------------------------------------------------------

    def _release(self, op: Operation, service: Service, spec: ServiceSpec) -> Task:
        """What to run: the last deployed release on resume; otherwise the revision the
        operation names, or the source's newest one, fetched and built if it is code."""
        params = op.params or {}
        if op.type == "RESUME_SERVICE" or params.get("rollback"):
            wanted = params.get("revision") or service.live_revision
            for row in self.store.list_revisions(service.id):
                if row.revision == wanted and row.detail:
                    self.journal.deploy_log(op, f"[AppRunner] Redeploying {row.image} (no rebuild)")
                    return Release.from_dict(row.detail)
            raise SlipwayError(f"revision {wanted} is no longer recorded")
        revision, ref = self._target(op, service, spec)
        if spec.source.image:
            return image_release(spec, revision)
        self.feedback.started(service, spec, op, revision)
        release = yield Offload(
            lambda: code_release(
                service.name,
                spec,
                self.git,
                self.builder,
                self.settings.data_dir / "builds",
                lambda line: self.journal.deploy_log(op, line),
                self.secrets,
                ref=ref,
                sha=revision,
                token=self.tokens(spec),
            ),
            BUILD_LANE,
        )
        return release

    def _target(self, op: Operation, service: Service, spec: ServiceSpec) -> tuple[str, str]:
        """The revision this operation deploys, fixed in its row once known, so a poll
        or webhook that sees the same one later knows it is already on its way."""
        params = op.params or {}
        if params.get("revision") and params.get("ref"):
            return params["revision"], params["ref"]
        found = self.newest(service, spec)
        revision = params.get("revision") or found.revision
        op.params.update(revision=revision, ref=found.ref)  # seen by feedback when it ends
        self.store.update_operation(op.id, params=op.params)
        self.store.update_service(service.id, latest_revision=found.revision, latest_ref=found.ref)
        return revision, found.ref

    # -- deployments ------------------------------------------------------------------

    def roll_out(
        self, service: Service, spec: ServiceSpec, release: Release, op: Operation
    ) -> Task:
        """Start the new instances next to the old (as many as serve now, at least
        MinSize), wait until each is healthy, switch the route, and watch the new ones
        through the settle window while the old drain out of the route. On any failure,
        the old keep or resume serving."""
        op_id = op.id
        env = self.instance_env(service, spec, release)  # before the pull: a bad secret fails fast
        if release.pull:
            self.journal.deploy_log(op, f"[AppRunner] Pulling {release.image}")
            yield Offload(
                lambda: self.backend.pull(release.image, self._pull_credentials(spec)), PULL_LANE
            )
        self.queue.check(service.id)
        live = live_instances(service, self.backend.list_instances(service.id))
        serving = [i for i in live if i.running]
        if spec.worker == SINGLE:  # stop-first: never two at once
            stop_first(self.backend, serving)
            serving = []
        count = max(self.services.auto_scaling_for(spec)["min_size"], len(serving))
        self.journal.deploy_log(
            op, f"[AppRunner] Starting {count} instance(s) of {release.revision}"
        )
        started: list[Instance] = []
        try:
            for index in range(count):
                started.append(
                    self.backend.start_instance(
                        instance_spec(service, spec, release, env, op_id, index)
                    )
                )
            self.journal.deploy_log(
                op, f"[AppRunner] Waiting for {count} instance(s) to pass health checks"
            )
            for inst in started:
                yield from self.wait_healthy(inst, spec, release.port, service.id)
            if self.gradual is not None:  # the steps of a rollout policy, if it has one
                yield from self.gradual.advance(service, op, release.revision, started)
        except SlipwayError:
            for inst in started:
                self.backend.stop_instance(inst.id, timeout=2)
            raise
        self.journal.deploy_log(
            op, "[AppRunner] Health checks passed; routing traffic to the new instances"
        )
        previous = {
            "live_deployment_id": service.live_deployment_id,
            "live_revision": service.live_revision,
            "spec": service.spec,
        }
        with self.store.transaction():
            self.store.update_service(
                service.id,
                live_deployment_id=op_id,
                live_revision=release.revision,
                latest_revision=service.latest_revision or release.revision,
                spec=spec,
            )
            # The new revision takes every request of the main route; tags stay.
            split = self.store.get_split(service.id)
            self.store.put_split(service.id, split.without_shares())
            self.store.add_revision(
                Revision(
                    service_id=service.id,
                    revision=release.revision,
                    image=release.image,
                    operation_id=op_id,
                    detail=release.to_dict(),
                    created_at=time.time(),
                )
            )
        self.routes.apply()
        try:
            if previous["live_deployment_id"]:  # a first deployment has nothing to go back to
                yield from self._settle(op, started, live, service.id)
        except SlipwayError:
            with self.store.transaction():
                self.store.update_service(service.id, **previous)
                self.store.put_split(service.id, split)
            self.routes.apply()
            for inst in started:
                self.backend.stop_instance(inst.id, timeout=2)
            raise
        self.stop_instances(service.id, keep={op_id, *self.store.get_split(service.id).kept()})
        if not release.pull:
            self.builder.prune(service.name, keep=[release.image])

    def instance_env(self, service: Service, spec: ServiceSpec, release: Release) -> dict[str, str]:
        """The release's environment with its secrets' values, read now and only for
        ``service``'s instances: a value lives in their environment and nowhere else.
        Instances of a ``spec`` that traces get the OTEL_* environment first (the
        service's own variables win)."""
        traced = trace_env(service, self.settings) if spec.tracing else {}
        return {**traced, **release.env, **self.secrets.resolve(service.name, release.secrets)}

    def _settle(
        self, op: Operation, started: list[Instance], old: list[Instance], service_id: str
    ) -> Task:
        """The old instances are out of the route but still up: for ``settle_seconds``
        a crash of a new one puts them back. Meanwhile the old drain: they keep what
        they carry (requests in flight, WebSockets, event streams) until it ends or
        the service's drain window does, and are stopped after."""
        begun = time.monotonic()
        window = self.routes.drain_window(service_id)
        if old:
            self.journal.deploy_log(
                op,
                f"[AppRunner] Draining {len(old)} instance(s) of the previous revision for up"
                f" to {window:g}s",
            )
        settle = self.settings.settle_seconds
        while (elapsed := time.monotonic() - begun) < settle:
            for inst in started:
                now = self.backend.get_instance(inst.id)
                if now is None or not now.running or now.restart_count > inst.restart_count:
                    code = f" with exit code {now.exit_code}" if now and now.exit_code else ""
                    raise SlipwayError(
                        f"instance {inst.name} crashed{code} {elapsed:.0f}s after going live;"
                        " the previous revision serves again" + self.log_tail(inst)
                    )
            yield Wait(min(SETTLE_POLL, settle - elapsed))
            self.queue.check(service_id)
        if not old:
            return
        rest = max(0.0, window - (time.monotonic() - begun))
        addresses = {i.address for i in old}
        left = yield from self.routes.drained(addresses, rest, lambda: self.queue.check(service_id))
        if left:
            self.journal.deploy_log(
                op,
                f"[AppRunner] The drain window ({window:g}s) is over with {left} request(s) or"
                " stream(s) still open on the previous revision: they close with it",
            )

    def wait_healthy(self, inst: Instance, spec: ServiceSpec, port: int, service_id: str) -> Task:
        if spec.worker:  # no port: started once it stays up (``worker_rollout.py``)
            up = self.settings.worker_up_seconds
            check = partial(self.queue.check, service_id)
            yield from stays_up(self.backend, inst, up, check, self.log_tail)
            return
        hc = spec.health
        # An instance that keeps crashing is running again (exit code 0) as often as not
        # when it is looked at last: the code of any exit seen on the way is the one to say.
        exits = [inst.exit_code]

        def alive() -> bool:
            self.queue.check(service_id)
            current = self.backend.get_instance(inst.id)
            if current is not None:
                exits.append(current.exit_code)
            return current is not None and current.state in ("running", "created")

        try:
            if not inst.host_ip or not inst.host_port:
                raise SlipwayError(f"instance {inst.name} did not publish its port")
            for pause in self.until_healthy(
                inst.host_ip,
                inst.host_port,
                hc.protocol,
                hc.path,
                hc.interval,
                hc.timeout,
                hc.healthy_threshold,
                hc.unhealthy_threshold,
                deadline=self.settings.health_deadline,
                is_alive=alive,
            ):
                yield Wait(pause)
        except SlipwayError as exc:
            current = self.backend.get_instance(inst.id)
            codes = [c for c in (*exits, current.exit_code if current else None) if c]
            code = f" (exit code {codes[-1]})" if codes else ""
            raise SlipwayError(
                f"instance {inst.name} failed its {hc.protocol} health check on port"
                f" {port}{code}: {exc.message}" + self.log_tail(inst)
            ) from exc

    def log_tail(self, inst: Instance) -> str:
        try:
            tail = self.backend.logs(inst.id, tail=10).strip()
        except SlipwayError:
            return ""
        return f"; last log lines:\n{tail}" if tail else ""

    def _pull_credentials(self, spec: ServiceSpec) -> tuple[str, str] | None:
        image = spec.source.image
        if image is None:
            return None
        return self.credentials.for_image(image.identifier, image.repository_type)

    # -- stopping ---------------------------------------------------------------------

    def stop_instances(self, service_id: str, keep: set[str] | None = None) -> None:
        """Stop the service's instances, but those of the deployments ``keep``."""
        for inst in self.backend.list_instances(service_id):
            if keep is None or inst.deployment_id not in keep:
                self.backend.stop_instance(inst.id, timeout=10)

    def _delete(self, service: Service, spec: ServiceSpec) -> Task:
        # Its host stops answering first, so DELETED is only said once it is gone; what
        # its instances carry drains (the service's drain window) before they stop.
        self.routes.withdraw(service.id)
        try:
            yield from self.routes.leave(self.backend.list_instances(service.id))
            self.stop_instances(service.id)
            with self.store.transaction():
                self.store.update_service(service.id, status="DELETED", live_deployment_id=None)
                self.store.remove_tags(service.arn)
        finally:  # DELETED keeps it out from here; a failed delete gets its route back
            self.routes.restore(service.id)
        self.journal.service_status(service, service.status, "DELETED")
        if spec.source.code:
            self.builder.remove_all(service.name)
        for row in self.store.list_revisions(service.id):
            if not self._image_in_use(row.image, service.id):
                self.backend.remove_image(row.image)
        return "service deleted"

    def _image_in_use(self, image: str, except_service: str) -> bool:
        for other in self.store.list_services():
            if other.id != except_service and any(
                r.image == image for r in self.store.list_revisions(other.id)
            ):
                return True
        return False


def instance_spec(
    service: Service,
    spec: ServiceSpec,
    release: Release,
    env: dict[str, str],
    deployment_id: str,
    index: int,
) -> InstanceSpec:
    return InstanceSpec(
        service_id=service.id,
        service_name=service.name,
        deployment_id=deployment_id,
        revision=release.revision,
        image=release.image,
        port=0 if spec.worker else release.port,  # a worker publishes no port
        env=env,
        command=release.command,
        cpu_units=int(spec.instance.cpu),
        memory_mb=int(spec.instance.memory),
        index=index,
        networks=tuple(spec.network.networks),
    )


def trace_env(service: Service, settings: Settings) -> dict[str, str]:
    """The OTEL_* environment of a traced service's instances (``observe/tracing.py``)."""
    trace = settings.trace_settings
    resource = resource_attributes(service.name, service.arn, settings.region, settings.account_id)
    return otel_env(resource, trace.instance_endpoint or trace.endpoint)
