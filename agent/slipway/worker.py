"""The operation queue and the reconcile loop.

Operations of one service run one at a time, in the order they were queued;
different services run side by side. The reconcile loop converges what runs
(containers, Caddy routes) on what the store says should, so a restart of the
agent, dockerd or Caddy heals by itself.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Set
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import health
from .backends import Backend, Instance, InstanceSpec
from .config import Settings
from .errors import SlipwayError
from .feedback import Feedback, NoFeedback
from .models import ServiceSpec
from .observe.applogs import AppLogCollector
from .observe.events import EventBus
from .observe.logs import LogStore
from .releases import (
    Builder,
    Git,
    Release,
    code_release,
    image_release,
    resolve_secrets,
)
from .routing.router import ROUTE_CHANGE_SECONDS, Route, Router
from .services import ACTIVE_STATUSES, DEPLOYING_OPS, Resolver, Services
from .store import Store
from .triggers import Found
from .upkeep import Upkeep

log = logging.getLogger("slipway.worker")

# Operation type -> service status when it succeeds / fails (None: as it was).
OUTCOME = {
    "CREATE_SERVICE": ("RUNNING", "CREATE_FAILED"),
    "START_DEPLOYMENT": ("RUNNING", None),
    "UPDATE_SERVICE": ("RUNNING", None),
    "RESUME_SERVICE": ("RUNNING", "PAUSED"),
    "PAUSE_SERVICE": ("PAUSED", None),
    "DELETE_SERVICE": ("DELETED", "DELETE_FAILED"),
}


def serving_instances(
    service: dict[str, Any], instances: list[Instance], exclude: Set[str] = frozenset()
) -> list[Instance]:
    """The instances a service's route reaches: running ones of its live deployment,
    less ``exclude`` (instances not yet healthy, or draining)."""
    live = service["live_deployment_id"]
    return [
        i
        for i in instances
        if live
        and i.service_id == service["id"]
        and i.deployment_id == live
        and i.running
        and i.address
        and i.id not in exclude
    ]


def desired_routes(
    services: list[dict[str, Any]],
    instances: list[Instance],
    settings: Settings,
    exclude: frozenset[str] = frozenset(),
) -> list[Route]:
    """Which upstreams each service host should reach (``serving_instances``). Pure, so
    the rule is testable with plain data."""
    routes = []
    for service in services:
        host = settings.service_host(service["hostname"])
        if service["status"] == "PAUSED":
            routes.append(Route(host=host, upstreams=(), paused=True))
            continue
        upstreams = sorted(i.address or "" for i in serving_instances(service, instances, exclude))
        routes.append(Route(host=host, upstreams=tuple(upstreams)))
    return routes


def stray_instances(
    services: list[dict[str, Any]], instances: list[Instance], busy: set[str]
) -> list[Instance]:
    """Instances that nothing should be running: of deleted or paused services, or of a
    deployment that is not live, for services with no operation under way."""
    by_id = {s["id"]: s for s in services}
    strays = []
    for inst in instances:
        service = by_id.get(inst.service_id)
        if service is None or inst.service_id in busy:
            continue
        if service["status"] in ("DELETED", "PAUSED") or (
            inst.deployment_id != service["live_deployment_id"]
        ):
            strays.append(inst)
    return strays


class Worker:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        services: Services,
        backend: Backend,
        router: Router,
        resolve: Resolver,
        git: Git,
        builder: Builder,
        logs: LogStore,
        newest: Callable[[dict[str, Any], ServiceSpec], Found],
        tokens: Callable[[ServiceSpec], str | None] = lambda spec: None,
        feedback: Feedback | None = None,
        events: EventBus | None = None,
        applogs: AppLogCollector | None = None,
        wait_healthy: Callable[..., None] = health.wait_healthy,
    ) -> None:
        self.events = events
        self.applogs = applogs
        self.newest = newest
        self.tokens = tokens
        self.feedback = feedback or NoFeedback()
        self.store = store
        self.git = git
        self.builder = builder
        self.logs = logs
        self.wait_healthy = wait_healthy
        self.settings = settings
        self.services = services
        self.backend = backend
        self.router = router
        self.resolve = resolve
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._running: set[str] = set()
        self._cancelled: set[str] = set()  # services whose deployment should stop
        self.upkeep = Upkeep()
        self._probed: dict[str, float] = {}  # service id -> when its live instances were probed
        # Live instances kept out of the route: joining until healthy, leaving to drain.
        self._joining: set[str] = set()
        self._leaving: set[str] = set()
        self._running_lock = threading.Lock()
        self._route_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="slipway-op")
        self._threads: list[threading.Thread] = []

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self.recover()
        for target, name in (
            (self._dispatch_loop, "dispatch"),
            (self._reconcile_loop, "reconcile"),
        ):
            thread = threading.Thread(target=target, name=f"slipway-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.wake()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    def recover(self) -> None:
        """Pick up operations a previous agent left IN_PROGRESS, and clear the build
        directories it left behind."""
        shutil.rmtree(self.settings.data_dir / "builds", ignore_errors=True)
        for op in self.store.operations_with_status("IN_PROGRESS"):
            service = self.store.get_service(op["service_id"])
            if service and service["live_deployment_id"] == op["id"]:
                # The route already switched: only the old instances were left to stop.
                self._stop_instances(service["id"], keep=op["id"])
                self._finish(op, service, ok=True, message="completed after an agent restart")
                continue
            for inst in self.backend.list_instances(op["service_id"]):
                if inst.deployment_id == op["id"]:
                    self.backend.stop_instance(inst.id, timeout=2)
            self.store.update_operation(
                op["id"], status="PENDING", message="restarted after an agent restart"
            )
            log.warning("operation %s %s restarts after an agent restart", op["type"], op["id"])

    # -- dispatch ---------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            try:
                self._dispatch()
            except SlipwayError:
                log.exception("dispatch failed")

    def _dispatch(self) -> None:
        first_per_service: dict[str, dict[str, Any]] = {}
        for op in self.store.operations_with_status(*ACTIVE_STATUSES):
            first_per_service.setdefault(op["service_id"], op)
        for service_id, op in first_per_service.items():
            with self._running_lock:
                if service_id in self._running or op["status"] != "PENDING":
                    continue
                self._running.add(service_id)
            self._pool.submit(self._run_guarded, op)

    def _run_guarded(self, op: dict[str, Any]) -> None:
        try:
            self.run_operation(op)
        except Exception:  # a bug must not wedge the service's queue
            log.exception("operation %s crashed", op["id"])
            service = self.store.get_service(op["service_id"])
            self._finish(op, service, ok=False, message="internal error; see the agent log")
        finally:
            with self._running_lock:
                self._running.discard(op["service_id"])
                if op["type"] == "DELETE_SERVICE":
                    self._cancelled.discard(op["service_id"])
            self.wake()

    # -- operations -------------------------------------------------------------

    def run_operation(self, op: dict[str, Any]) -> None:
        now = time.time()
        self.store.update_operation(op["id"], status="IN_PROGRESS", started_at=now, updated_at=now)
        service = self.store.get_service(op["service_id"])
        if self.events:
            self.events.operation_status_changed(service, op, "IN_PROGRESS")
        op = {**op, "status": "IN_PROGRESS"}
        self._event(service, f"{op['type']} operation {op['id']} started")
        try:
            message = self._execute(op, service)
        except SlipwayError as exc:
            self._deploy_log(op, f"[AppRunner] Failed: {exc.message}")
            self._finish(op, self.store.get_service(service["id"]), ok=False, message=exc.message)
            return
        self._finish(op, self.store.get_service(service["id"]), ok=True, message=message)

    def _deploy_log(self, op: dict[str, Any], line: str) -> None:
        if op["type"] in DEPLOYING_OPS:
            self.logs.append(op["service_id"], f"deployment/{op['id']}", line)

    def _event(self, service: dict[str, Any], message: str) -> None:
        log.info("%s: %s", service["name"], message)
        self.logs.append(service["id"], "events", f"[AppRunner] {message}")

    def _execute(self, op: dict[str, Any], service: dict[str, Any]) -> str:
        kind = op["type"]
        spec = ServiceSpec.from_dict(service["spec"])
        if kind == "PAUSE_SERVICE":
            self._stop_instances(service["id"])
            self.store.update_service(service["id"], status="PAUSED")
            if self.events:
                self.events.service_status_changed(service, service["status"], "PAUSED")
            self.apply_routes()
            return "service paused"
        if kind == "DELETE_SERVICE":
            return self._delete(service, spec)
        if kind == "UPDATE_SERVICE":
            spec = ServiceSpec.from_dict(op["params"]["spec"])
        release = self._release(op, service, spec)
        self.roll_out(service, spec, release, op)
        return f"revision {release.revision} is live"

    def _release(self, op: dict[str, Any], service: dict[str, Any], spec: ServiceSpec) -> Release:
        """What to run: the last deployed release on resume; otherwise the revision the
        operation names, or the source's newest one, fetched and built if it is code."""
        params = op["params"] or {}
        if op["type"] == "RESUME_SERVICE" or params.get("rollback"):
            wanted = params.get("revision") or service["live_revision"]
            for row in self.store.list_revisions(service["id"]):
                if row["revision"] == wanted and row["detail"]:
                    self._deploy_log(op, f"[AppRunner] Redeploying {row['image']} (no rebuild)")
                    return Release.from_dict(row["detail"])
            raise SlipwayError(f"revision {wanted} is no longer recorded")
        revision, ref = self._target(op, service, spec)
        if spec.source.image:
            return image_release(spec, revision)
        self.feedback.started(service, spec, op, revision)
        return code_release(
            service["name"],
            spec,
            self.git,
            self.builder,
            self.settings.data_dir / "builds",
            lambda line: self._deploy_log(op, line),
            ref=ref,
            sha=revision,
            token=self.tokens(spec),
        )

    def _target(
        self, op: dict[str, Any], service: dict[str, Any], spec: ServiceSpec
    ) -> tuple[str, str]:
        """The revision this operation deploys, fixed in its row once known, so a poll
        or webhook that sees the same one later knows it is already on its way."""
        params = op["params"] or {}
        if params.get("revision") and params.get("ref"):
            return params["revision"], params["ref"]
        found = self.newest(service, spec)
        revision = params.get("revision") or found.revision
        op["params"] = {**params, "revision": revision, "ref": found.ref}
        self.store.update_operation(op["id"], params=op["params"])
        self.store.update_service(
            service["id"], latest_revision=found.revision, latest_ref=found.ref
        )
        return revision, found.ref

    def _finish(
        self, op: dict[str, Any], service: dict[str, Any], *, ok: bool, message: str
    ) -> None:
        now = time.time()
        status = "SUCCEEDED" if ok else "FAILED"
        if not ok and op["type"] == "UPDATE_SERVICE" and service["live_deployment_id"]:
            status = "ROLLBACK_SUCCEEDED"
            message = f"{message}; the previous configuration keeps serving"
        success, failure = OUTCOME[op["type"]]
        with self.store.transaction():
            self.store.update_operation(
                op["id"], status=status, message=message, ended_at=now, updated_at=now
            )
            more = [
                o
                for o in self.store.list_operations(service["id"])
                if o["status"] in ACTIVE_STATUSES
            ]
            new_status = success if ok else failure
            if new_status is None:
                new_status = "RUNNING" if service["live_deployment_id"] else "CREATE_FAILED"
            fields: dict[str, Any] = {"updated_at": now}
            if more and new_status != "DELETED":
                new_status = "OPERATION_IN_PROGRESS"
            fields["status"] = new_status
            if new_status == "DELETED":
                fields["deleted_at"] = now
            self.store.update_service(service["id"], **fields)
        if self.events:
            self.events.operation_status_changed(service, op, status, message)
            self.events.service_status_changed(service, service["status"], new_status, message)
        self._deploy_log(op, f"[AppRunner] Operation {status}: {message}")
        if op["type"] in DEPLOYING_OPS:
            self.feedback.finished(service, op, ok=ok, message=message)
        self._event(service, f"{op['type']} operation {op['id']} ended {status}: {message}")

    def roll_out(
        self, service: dict[str, Any], spec: ServiceSpec, release: Release, op: dict[str, Any]
    ) -> None:
        """Start the new instances next to the old (as many as serve now, at least
        MinSize), wait until each is healthy, switch the route, and watch the new ones
        through the settle window while the old drain out of the route. On any failure,
        the old keep or resume serving."""
        op_id = op["id"]
        if release.pull:
            self._deploy_log(op, f"[AppRunner] Pulling {release.image}")
            self.backend.pull(release.image, self._pull_credentials(spec))
        self._check_cancelled(op)
        env = {**release.env, **resolve_secrets(release.secrets, self.settings.secrets_dir)}
        serving = [
            i
            for i in self.backend.list_instances(service["id"])
            if i.deployment_id == service["live_deployment_id"] and i.running
        ]
        count = max(self.services.auto_scaling_for(spec)["min_size"], len(serving))
        self._deploy_log(op, f"[AppRunner] Starting {count} instance(s) of {release.revision}")
        started: list[Instance] = []
        try:
            for index in range(count):
                started.append(
                    self.backend.start_instance(
                        self._instance_spec(service, spec, release, env, op_id, index)
                    )
                )
            for inst in started:
                self._wait_healthy(inst, spec, release.port, op)
        except SlipwayError:
            for inst in started:
                self.backend.stop_instance(inst.id, timeout=2)
            raise
        self._deploy_log(
            op, "[AppRunner] Health checks passed; routing traffic to the new instances"
        )
        previous = {k: service[k] for k in ("live_deployment_id", "live_revision", "spec")}
        with self.store.transaction():
            self.store.update_service(
                service["id"],
                live_deployment_id=op_id,
                live_revision=release.revision,
                latest_revision=service["latest_revision"] or release.revision,
                spec=spec.to_dict(),
            )
            self.store.add_revision(
                {
                    "service_id": service["id"],
                    "revision": release.revision,
                    "image": release.image,
                    "operation_id": op_id,
                    "detail": release.to_dict(),
                    "created_at": time.time(),
                }
            )
        self.apply_routes()
        try:
            self._settle(started, op)
        except SlipwayError:
            self.store.update_service(service["id"], **previous)
            self.apply_routes()
            for inst in started:
                self.backend.stop_instance(inst.id, timeout=2)
            raise
        self._stop_instances(service["id"], keep=op_id)
        if not release.pull:
            self.builder.prune(service["name"], keep=[release.image])

    def _settle(self, started: list[Instance], op: dict[str, Any]) -> None:
        """The old instances are out of the route but still up: for ``settle_seconds``
        a crash of a new one puts them back. The same wait lets the old drain."""
        begun = time.monotonic()
        wait = max(self.settings.settle_seconds, self.settings.drain_seconds)
        while (elapsed := time.monotonic() - begun) < wait:
            if elapsed < self.settings.settle_seconds:
                for inst in started:
                    now = self.backend.get_instance(inst.id)
                    if now is None or not now.running or now.restart_count > inst.restart_count:
                        code = f" with exit code {now.exit_code}" if now and now.exit_code else ""
                        tail = self._tail(inst)
                        raise SlipwayError(
                            f"instance {inst.name} crashed{code} {elapsed:.0f}s after going live;"
                            " the previous revision serves again" + tail
                        )
            if self._stop.wait(0.5):
                return
            self._check_cancelled(op)

    def _tail(self, inst: Instance) -> str:
        try:
            tail = self.backend.logs(inst.id, tail=10).strip()
        except SlipwayError:
            return ""
        return f"; last log lines:\n{tail}" if tail else ""

    def _instance_spec(
        self,
        service: dict[str, Any],
        spec: ServiceSpec,
        release: Release,
        env: dict[str, str],
        deployment_id: str,
        index: int,
    ) -> InstanceSpec:
        return InstanceSpec(
            service_id=service["id"],
            service_name=service["name"],
            deployment_id=deployment_id,
            revision=release.revision,
            image=release.image,
            port=release.port,
            env=env,
            command=release.command,
            cpu_units=int(spec.instance.cpu),
            memory_mb=int(spec.instance.memory),
            index=index,
        )

    def cancel(self, service_id: str) -> None:
        """Ask the deployment under way for a service to stop (DeleteService)."""
        with self._running_lock:
            self._cancelled.add(service_id)

    def _check_cancelled(self, op: dict[str, Any]) -> None:
        with self._running_lock:
            cancelled = op["service_id"] in self._cancelled
        if cancelled:
            raise SlipwayError("cancelled: the service is being deleted")

    def _pull_credentials(self, spec: ServiceSpec) -> tuple[str, str] | None:
        image = spec.source.image
        if image is None:
            return None
        return self.services.pull_credentials(image.identifier, image.repository_type)

    def _wait_healthy(
        self, inst: Instance, spec: ServiceSpec, port: int, op: dict[str, Any]
    ) -> None:
        hc = spec.health

        def alive() -> bool:
            self._check_cancelled(op)
            current = self.backend.get_instance(inst.id)
            return current is not None and current.state in ("running", "created")

        try:
            if not inst.host_ip or not inst.host_port:
                raise SlipwayError(f"instance {inst.name} did not publish its port")
            self.wait_healthy(
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
            )
        except SlipwayError as exc:
            tail = self.backend.logs(inst.id, tail=10).strip()
            current = self.backend.get_instance(inst.id)
            code = f" (exit code {current.exit_code})" if current and current.exit_code else ""
            raise SlipwayError(
                f"instance {inst.name} failed its {hc.protocol} health check on port"
                f" {port}{code}: {exc.message}" + (f"; last log lines:\n{tail}" if tail else "")
            ) from exc

    def _stop_instances(self, service_id: str, keep: str | None = None) -> None:
        for inst in self.backend.list_instances(service_id):
            if keep is None or inst.deployment_id != keep:
                self.backend.stop_instance(inst.id, timeout=10)

    def _delete(self, service: dict[str, Any], spec: ServiceSpec) -> str:
        self._stop_instances(service["id"])
        with self.store.transaction():
            self.store.update_service(service["id"], status="DELETED", live_deployment_id=None)
            self.store.remove_tags(service["arn"])
        if self.events:
            self.events.service_status_changed(service, service["status"], "DELETED")
        self.apply_routes()
        if spec.source.code:
            self.builder.remove_all(service["name"])
        for row in self.store.list_revisions(service["id"]):
            if not self._image_in_use(row["image"], service["id"]):
                self.backend.remove_image(row["image"])
        return "service deleted"

    def _image_in_use(self, image: str, except_service: str) -> bool:
        for other in self.store.list_services():
            if other["id"] != except_service and any(
                r["image"] == image for r in self.store.list_revisions(other["id"])
            ):
                return True
        return False

    # -- reconcile ----------------------------------------------------------------

    def apply_routes(self) -> None:
        with self._route_lock:
            services = self.store.list_services()
            instances = self.backend.list_instances()
            out = frozenset(self._joining | self._leaving)
            self.router.apply(desired_routes(services, instances, self.settings, out))

    def reconcile_once(self) -> None:
        try:
            self.router.keep_route_dns()
        except SlipwayError as exc:  # Caddy falls back to the last load's instances
            log.warning("route DNS: %s", exc.message)
        self.apply_routes()
        with self._running_lock:
            busy = set(self._running)
        busy |= {op["service_id"] for op in self.store.operations_with_status(*ACTIVE_STATUSES)}
        services = self.store.list_services(include_deleted=True)
        instances = self.backend.list_instances()
        if self.applogs is not None:  # this agent's instances only, not the host's
            own = {s["id"] for s in services}
            self.applogs.sync([i for i in instances if i.service_id in own])
        for inst in stray_instances(services, instances, busy):
            log.info("stopping stray instance %s", inst.name)
            self.backend.stop_instance(inst.id, timeout=10)
        for service in services:
            if (
                service["status"] == "RUNNING"
                and service["live_deployment_id"]
                and service["id"] not in busy
            ):
                self._keep_up(service, instances)

    def _keep_up(self, service: dict[str, Any], instances: list[Instance]) -> None:
        """Report crashes of live instances; replace dead, missing or unhealthy ones."""
        spec = ServiceSpec.from_dict(service["spec"])
        hc = spec.health
        live = [
            i
            for i in instances
            if i.service_id == service["id"] and i.deployment_id == service["live_deployment_id"]
        ]
        healthy: dict[str, bool] = {}
        now = time.monotonic()
        if now - self._probed.get(service["id"], 0.0) >= hc.interval:
            self._probed[service["id"]] = now
            for inst in live:
                if inst.running and inst.host_ip and inst.host_port:
                    healthy[inst.id] = health.probe(
                        inst.host_ip,
                        inst.host_port,
                        hc.protocol,
                        hc.path,
                        hc.timeout,
                    )[0]
        verdict = self.upkeep.judge(
            live,
            healthy,
            self.services.auto_scaling_for(spec)["min_size"],
            hc.unhealthy_threshold,
        )
        for report in verdict.reports:
            self._event(service, report)
        if verdict.replace or verdict.missing:
            with self._running_lock:
                if service["id"] in self._running:
                    return
                self._running.add(service["id"])
            self._pool.submit(self._replace, service, spec, list(verdict.replace), verdict.missing)

    def _replace(
        self, service: dict[str, Any], spec: ServiceSpec, bad: list[Instance], missing: int
    ) -> None:
        """Fresh instances of the live revision join the route once healthy; then the
        bad ones leave it and stop."""
        try:
            started = self._start_live(service, spec, len(bad) + missing, "replacement")
            for inst in started:
                self._event(service, f"instance {inst.name} replaces a lost one")
            if len(started) == len(bad) + missing:
                self._leave(service, bad)
        except SlipwayError as exc:
            self._event(service, f"cannot replace instances: {exc.message}")
        finally:
            self._release_service(service["id"])

    def _start_live(
        self, service: dict[str, Any], spec: ServiceSpec, count: int, what: str
    ) -> list[Instance]:
        """Start ``count`` instances of the live revision side by side; each joins the
        route once healthy. Returns those that did; one that fails is stopped and said."""
        rows = [
            r
            for r in self.store.list_revisions(service["id"])
            if r["revision"] == service["live_revision"] and r["detail"]
        ]
        if not rows or count <= 0:
            return []
        release = Release.from_dict(rows[0]["detail"])
        env = {**release.env, **resolve_secrets(release.secrets, self.settings.secrets_dir)}
        job = {"service_id": service["id"], "type": "SCALE", "id": ""}
        base = int(time.time() * 1000) % 10**9
        started: list[Instance] = []
        try:
            for n in range(count):
                # Held so that no route is written between its start and its exclusion.
                with self._route_lock:
                    inst = self.backend.start_instance(
                        self._instance_spec(
                            service, spec, release, env, service["live_deployment_id"], base + n
                        )
                    )
                    self._joining.add(inst.id)
                started.append(inst)
        except SlipwayError:
            for inst in started:
                self.backend.stop_instance(inst.id, timeout=2)
                self._joining.discard(inst.id)
            raise
        healthy = []
        for inst in started:
            try:
                self._wait_healthy(inst, spec, release.port, job)
                healthy.append(inst)
            except SlipwayError as exc:
                self.backend.stop_instance(inst.id, timeout=2)
                self._event(service, f"{what} instance failed: {exc.message}")
            finally:
                self._joining.discard(inst.id)
        if healthy:
            self.apply_routes()
        return healthy

    def _leave(self, service: dict[str, Any], leaving: list[Instance]) -> None:
        """Take instances out of the route, let their in-flight requests finish (up to
        ``drain_seconds``), then stop them."""
        if not leaving:
            return
        ids = {i.id for i in leaving}
        self._leaving |= ids
        try:
            self.apply_routes()
            addresses = {i.address for i in leaving}
            deadline = time.monotonic() + self.settings.drain_seconds
            # Caddy sends them new requests until its answer for the route expires.
            self._stop.wait(min(self.settings.drain_seconds, ROUTE_CHANGE_SECONDS))
            while time.monotonic() < deadline:
                try:
                    flights = self.router.upstream_requests()
                except SlipwayError:
                    break
                if not any(flights.get(a, 0) for a in addresses):
                    break
                if self._stop.wait(0.25):
                    break
            for inst in leaving:
                self.backend.stop_instance(inst.id, timeout=10)
        finally:
            self._leaving -= ids

    # -- scaling ------------------------------------------------------------------

    def busy(self) -> set[str]:
        """Services with an operation, replacement or scaling action under way."""
        with self._running_lock:
            running = set(self._running)
        return running | {
            op["service_id"] for op in self.store.operations_with_status(*ACTIVE_STATUSES)
        }

    def serving(self, service: dict[str, Any], instances: list[Instance]) -> list[Instance]:
        """The live instances in the service's route now."""
        return serving_instances(service, instances, self._joining | self._leaving)

    def scale(self, service: dict[str, Any], target: int, reason: str) -> bool:
        """Move the service to ``target`` serving instances in the background; False when
        something else is under way for it."""
        with self._running_lock:
            if service["id"] in self._running:
                return False
            self._running.add(service["id"])
        self._pool.submit(self._scale, service, target, reason)
        return True

    def _scale(self, service: dict[str, Any], target: int, reason: str) -> None:
        try:
            service = self.store.get_service(service["id"])
            spec = ServiceSpec.from_dict(service["spec"])
            serving = self.serving(service, self.backend.list_instances(service["id"]))
            before = len(serving)
            if target > before:
                started = self._start_live(service, spec, target - before, "new")
                after = before + len(started)
            elif target < before:
                try:
                    flights = self.router.upstream_requests()
                except SlipwayError:
                    flights = {}
                # The idlest go first, the newest of equals.
                ranked = sorted(serving, key=lambda i: i.started_at or "", reverse=True)
                ranked.sort(key=lambda i: flights.get(i.address or "", 0))
                self._leave(service, ranked[: before - target])
                after = target
            else:
                return
            if after != before:
                self._scaled(service, before, after, reason)
        except SlipwayError as exc:
            self._event(service, f"scaling to {target} instances failed: {exc.message}")
        finally:
            self._release_service(service["id"])

    def _scaled(self, service: dict[str, Any], before: int, after: int, reason: str) -> None:
        word = "out" if after > before else "in"
        message = f"Scaled {word} from {before} to {after} instance(s): {reason}"
        self._event(service, message)
        if self.events:
            self.events.service_scaled(service, before, after, message)

    def scaling_refused(
        self, service: dict[str, Any], serving: int, wanted: int, message: str
    ) -> None:
        if self.events:
            self.events.service_scaled(service, serving, serving, message, wanted=wanted)

    def _release_service(self, service_id: str) -> None:
        with self._running_lock:
            self._running.discard(service_id)
        self.wake()

    def _reconcile_loop(self) -> None:
        while not self._stop.wait(self.settings.reconcile_interval):
            try:
                self.reconcile_once()
            except SlipwayError as exc:
                log.warning("reconcile: %s", exc.message)
