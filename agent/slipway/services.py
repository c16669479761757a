"""Service and operation rules: what each App Runner call may do, and in which state.

Every mutation is validated completely before anything is written, and then
written in one transaction together with the operation row that the dispatcher
will carry out. Nothing here touches containers or Caddy.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .autoscaling import AutoScalingConfigurations
from .config import Settings
from .connections import Connections
from .errors import (
    InvalidRequest,
    InvalidState,
    QuotaExceeded,
    RegistryError,
    ResourceNotFound,
)
from .models import ServiceSpec, SourceConfig
from .observability import ObservabilityConfigurations
from .operations.journal import Journal
from .operations.queue import ACTIVE_STATUSES, DEPLOYING_OPS, OperationQueue
from .paging import Page, Pager
from .records import Operation, Revision, Service
from .store import Store
from .store.configurations import CONFIGURATION_TABLES
from .tags import MAX_TAGS, tag_dict
from .vpc.connectors import NetworkCheck, VpcConnectors
from .vpc.ingress import VpcIngressConnections
from .workers import check_request, check_tag_change, mode_of

IMAGE_FIELD = "SourceConfiguration.ImageRepository.ImageIdentifier"


class SourceCheck(Protocol):
    """The image's digest (None for a repository); raises naming what is wrong."""

    def __call__(self, source: SourceConfig) -> str | None: ...


def hostname_label(name: str) -> str:
    """The DNS label a service answers on: names are case- and '_'-insensitive there."""
    return name.lower().replace("_", "-")


class Services:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        check_source: SourceCheck,
        queue: OperationQueue,
        journal: Journal,
        connections: Connections | None = None,
        pager: Pager | None = None,
        network_check: NetworkCheck | None = None,
    ) -> None:
        """``pager`` signs the listings' tokens (the agent's is keyed from its vault);
        without one, tokens hold only while this process lives."""
        self.store = store
        self.pager = pager or Pager(secrets.token_bytes(32))
        self.settings = settings
        self.check_source = check_source
        self.queue = queue
        self.journal = journal
        self.connections = connections
        self.auto_scaling_configs = AutoScalingConfigurations(store, settings)
        self.observability_configs = ObservabilityConfigurations(store, settings)
        self.vpc_connectors = VpcConnectors(store, settings, network_check)
        self.vpc_ingress = VpcIngressConnections(store, settings)

    # -- ARNs -------------------------------------------------------------------

    def _arn(self, resource: str) -> str:
        s = self.settings
        return f"arn:aws:apprunner:{s.region}:{s.account_id}:{resource}"

    # -- lookups ----------------------------------------------------------------

    def service(self, arn: str) -> Service:
        found = self.store.service_by_arn(arn)
        if found is None:
            raise ResourceNotFound(f"Service {arn} not found")
        return found

    def live_service(self, arn: str) -> Service:
        service = self.service(arn)
        if service.status == "DELETED":
            raise InvalidState(f"Service {service.name} is deleted")
        return service

    # -- auto scaling configurations: the calls, answered by autoscaling.py -----------

    def ensure_default_auto_scaling(self) -> None:
        self.auto_scaling_configs.ensure_default()

    def auto_scaling(self, arn: str) -> dict[str, Any]:
        return self.auto_scaling_configs.get(arn)

    def auto_scaling_for(self, spec: ServiceSpec) -> dict[str, Any]:
        return self.auto_scaling_configs.for_spec(spec)

    def auto_scaling_lookup(self) -> Callable[[ServiceSpec], dict[str, Any]]:
        """``auto_scaling_for`` that reads each configuration once: for a pass over
        every service (the scaler's each second, the reconcile pass's), where most
        services share the default."""
        seen: dict[str | None, dict[str, Any]] = {}

        def lookup(spec: ServiceSpec) -> dict[str, Any]:
            if spec.auto_scaling_arn not in seen:
                seen[spec.auto_scaling_arn] = self.auto_scaling_for(spec)
            return seen[spec.auto_scaling_arn]

        return lookup

    def create_auto_scaling(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.auto_scaling_configs.create(params)

    def list_auto_scaling(self, name: str | None, latest_only: bool) -> list[dict[str, Any]]:
        return self.auto_scaling_configs.active(name, latest_only)

    def is_latest(self, row: dict[str, Any]) -> bool:
        return self.auto_scaling_configs.is_latest(row)

    def has_associated_service(self, row: dict[str, Any]) -> bool:
        return self.auto_scaling_configs.has_associated_service(row)

    def update_default_auto_scaling(self, arn: str) -> dict[str, Any]:
        return self.auto_scaling_configs.update_default(arn)

    def services_for_auto_scaling(self, arn: str) -> list[str]:
        return self.auto_scaling_configs.services_for(arn)

    def delete_auto_scaling(self, arn: str, delete_all: bool) -> dict[str, Any]:
        return self.auto_scaling_configs.delete(arn, delete_all)

    # -- operations -------------------------------------------------------------

    def _enqueue(self, service: Service, op_type: str, params: dict | None = None) -> str:
        op_id = str(uuid.uuid4())
        now = time.time()
        self.store.insert_operation(
            Operation(
                id=op_id,
                service_id=service.id,
                target_arn=service.arn,
                type=op_type,
                status="PENDING",
                params=params or {},
                created_at=now,
                updated_at=now,
            )
        )
        return op_id

    def _pending_ops(self, service_id: str) -> list[Operation]:
        return [op for op in self.store.list_operations(service_id) if op.status in ACTIVE_STATUSES]

    def _check_connection(self, spec: ServiceSpec) -> None:
        arn = spec.source.connection_arn
        if arn and self.connections:
            try:
                self.connections.check_usable(arn)
            except ResourceNotFound as exc:
                raise InvalidRequest(
                    f"SourceConfiguration.AuthenticationConfiguration.ConnectionArn: {exc.message}"
                ) from exc

    def _resolve(self, spec: ServiceSpec, field: str) -> str | None:
        """Check the source now so a bad one is refused before anything is stored: an
        image is resolved to its digest; a repository URL is checked for form (its branch
        is fetched by the deployment, which fails with a reason if it cannot)."""
        self._check_connection(spec)
        try:
            return self.check_source(spec.source)
        except RegistryError as exc:
            raise InvalidRequest(f"{field}: {exc.message}") from exc

    # -- services ---------------------------------------------------------------

    def create_service(self, params: dict[str, Any]) -> tuple[Service, str]:
        name = params["ServiceName"]
        spec = ServiceSpec.from_create(params)
        spec.network = self.vpc_connectors.resolve(spec.network)
        if spec.auto_scaling_arn:
            self.auto_scaling(spec.auto_scaling_arn)
        else:
            # As App Runner does: the default of the moment, kept when the default moves.
            spec.auto_scaling_arn = self.auto_scaling_configs.default()["arn"]
        self.observability_configs.attach(spec)
        tags = tag_dict(params.get("Tags") or [])
        spec.worker = mode_of(tags)
        check_request(spec.worker, params, self.auto_scaling_for(spec)["min_size"])
        label = hostname_label(name)
        with self.store.transaction():
            for other in self.store.list_services():
                if other.name == name:
                    raise InvalidRequest(f"Service with the provided name {name} already exists")
                if other.hostname == label:
                    raise InvalidRequest(
                        f"ServiceName {name}: service {other.name} already answers at"
                        f" {self.settings.service_host(label)}"
                    )
            if self.store.count_services() >= self.settings.service_quota:
                raise QuotaExceeded(
                    f"You have reached the maximum number of services"
                    f" ({self.settings.service_quota}) allowed for this host (service_quota)"
                )
        digest = self._resolve(spec, IMAGE_FIELD)
        service_id = uuid.uuid4().hex
        now = time.time()
        service = Service(
            id=service_id,
            name=name,
            arn=self._arn(f"service/{name}/{service_id}"),
            hostname=label,
            status="OPERATION_IN_PROGRESS",
            spec=spec,
            latest_revision=digest,
            created_at=now,
            updated_at=now,
        )
        with self.store.transaction():
            if self.store.live_service_by_hostname(label):
                raise InvalidRequest(f"Service with the provided name {name} already exists")
            self.store.insert_service(service)
            if tags:
                self.store.put_tags(service.arn, tags)
            op_id = self._enqueue(service, "CREATE_SERVICE", {"revision": digest})
        self._started(service, None)
        return self.store.get_service(service_id), op_id

    def list_services(self, max_results: int | None, token: str | None) -> Page:
        return self.pager.page(
            self.store.list_services(), max_results, token, listing="ListServices"
        )

    def _require_running(self, service: Service, action: str) -> None:
        status = service.status
        if status == "PAUSED":
            raise InvalidState(f"Service {service.name} is paused; resume it before you {action}")
        if status != "RUNNING" or self._pending_ops(service.id):
            raise InvalidState(
                f"Service {service.name} is in status {status}; you can {action} only"
                " when it is RUNNING and no operation is in progress"
            )

    def update_service(self, params: dict[str, Any]) -> tuple[Service, str]:
        service = self.live_service(params["ServiceArn"])
        self._require_running(service, "update it")
        old = service.spec
        new = old.updated(params)
        new.network = self.vpc_connectors.resolve(new.network)
        if new.auto_scaling_arn:
            self.auto_scaling(new.auto_scaling_arn)
        self.observability_configs.attach(new)
        check_request(new.worker, params, self.auto_scaling_for(new)["min_size"])
        digest = self._resolve(new, IMAGE_FIELD)
        with self.store.transaction():
            self._require_running(self.store.get_service(service.id), "update it")
            op_id = self._enqueue(
                service, "UPDATE_SERVICE", {"spec": new.to_dict(), "revision": digest}
            )
            self.store.update_service(
                service.id, status="OPERATION_IN_PROGRESS", updated_at=time.time()
            )
        self._started(service, service.status)
        return self.store.get_service(service.id), op_id

    def start_deployment(self, arn: str) -> str:
        service = self.live_service(arn)
        if service.status == "PAUSED":
            raise InvalidState(f"Service {service.name} is paused; resume it to deploy")
        if service.status not in ("RUNNING", "OPERATION_IN_PROGRESS") or any(
            op.type in ("PAUSE_SERVICE", "DELETE_SERVICE", "CREATE_SERVICE")
            for op in self._pending_ops(service.id)
        ):
            raise InvalidState(
                f"Service {service.name} is in status {service.status}; it cannot"
                " take a deployment now"
            )
        with self.store.transaction():
            op_id = self._enqueue(service, "START_DEPLOYMENT")
            self.store.update_service(
                service.id, status="OPERATION_IN_PROGRESS", updated_at=time.time()
            )
        self._started(service, service.status)
        return op_id

    def revision_detected(
        self, service_id: str, revision: str, *, ref: str, trigger: str
    ) -> str | None:
        """A watcher saw ``revision``: deploy it (automatic mode), hold it as the newest
        available one (manual mode), or do nothing if it is live or queued already.
        Queued deployments it supersedes are dropped; one under way is never cut
        short. Returns the id of the deployment it queued, if any."""
        with self.store.transaction():
            service = self.store.get_service(service_id)
            if service is None or service.status in ("DELETED", "DELETE_FAILED"):
                return None
            fields: dict[str, Any] = {}
            if service.latest_revision != revision:
                fields = {"latest_revision": revision, "latest_ref": ref}
                self.store.update_service(service_id, **fields)
            active = self._pending_ops(service_id)
            queued = [o for o in active if o.type in DEPLOYING_OPS]
            if any(self._brings(o, service) == revision for o in queued):
                return None
            if revision == service.live_revision and not queued:
                return None
            spec = service.spec
            if (
                not spec.source.auto_deployments
                or service.status in ("PAUSED", "CREATE_FAILED")
                or any(o.type in ("PAUSE_SERVICE", "DELETE_SERVICE") for o in active)
            ):
                if fields:
                    self._note(service, f"revision {revision} ({ref}) is available; {trigger}")
                return None
            for op in queued:
                if op.status == "PENDING" and op.type == "START_DEPLOYMENT":
                    self.store.delete_operation(op.id)
            previous = service.status
            service = dataclasses.replace(service, status="OPERATION_IN_PROGRESS")
            op_id = self._enqueue(
                service, "START_DEPLOYMENT", {"revision": revision, "ref": ref, "trigger": trigger}
            )
            self.store.update_service(
                service_id, status="OPERATION_IN_PROGRESS", updated_at=time.time()
            )
        self._note(service, f"deploying revision {revision} ({ref}), found by {trigger}")
        self._started(service, previous)
        return op_id

    @staticmethod
    def _brings(op: Operation, service: Service) -> str | None:
        """The revision a queued deployment will put live, when it is known now: a
        resume brings back the live one, like a rollback that names none."""
        named = (op.params or {}).get("revision")
        if named or op.type != "RESUME_SERVICE":
            return named
        return service.live_revision

    def rollback(self, arn: str, revision: str | None = None) -> str:
        """Deploy an earlier revision again from its kept image, without a rebuild: the
        one named (a prefix is enough), or the one before the running one."""
        service = self.live_service(arn)
        candidates = self.rollback_candidates(service)
        if revision:
            chosen = [r for r in candidates if r.revision.startswith(revision)]
            if not chosen:
                known = ", ".join(r.revision[:12] for r in candidates) or "none"
                raise InvalidRequest(
                    f"revision {revision} is not one {service.name} can roll back to;"
                    f" known: {known}"
                )
        else:
            chosen = [r for r in candidates if r.revision != service.live_revision]
            if not chosen:
                raise InvalidRequest(f"{service.name} has no earlier revision to roll back to")
        if service.status == "PAUSED":
            raise InvalidState(f"Service {service.name} is paused; resume it to deploy")
        with self.store.transaction():
            op_id = self._enqueue(
                service,
                "START_DEPLOYMENT",
                {"revision": chosen[0].revision, "ref": "rollback", "rollback": True},
            )
            self.store.update_service(
                service.id, status="OPERATION_IN_PROGRESS", updated_at=time.time()
            )
        self._note(service, f"rolling back to revision {chosen[0].revision}")
        self._started(service, service.status)
        return op_id

    def rollback_candidates(self, service: Service) -> list[Revision]:
        """Revisions that went live and stayed (their deployment succeeded), newest
        first, once each, with an image still kept."""
        ok = {o.id for o in self.store.list_operations(service.id) if o.status == "SUCCEEDED"}
        seen: dict[str, Revision] = {}
        for row in self.store.list_revisions(service.id):
            if row.operation_id in ok and row.detail and row.revision not in seen:
                seen[row.revision] = row
        return list(seen.values())

    def _note(self, service: Service, message: str) -> None:
        self.journal.note(service.id, message)

    def pause_service(self, arn: str) -> tuple[Service, str]:
        service = self.live_service(arn)
        if service.status == "PAUSED":
            raise InvalidState(f"Service {service.name} is already paused")
        self._require_running(service, "pause it")
        return self._transition(service, "PAUSE_SERVICE")

    def resume_service(self, arn: str) -> tuple[Service, str]:
        service = self.live_service(arn)
        if service.status != "PAUSED" or self._pending_ops(service.id):
            raise InvalidState(
                f"Service {service.name} is in status {service.status}; only a"
                " PAUSED service can be resumed"
            )
        return self._transition(service, "RESUME_SERVICE")

    def delete_service(self, arn: str) -> tuple[Service, str]:
        service = self.live_service(arn)
        if any(op.type == "DELETE_SERVICE" for op in self._pending_ops(service.id)):
            raise InvalidState(f"Service {service.name} is already being deleted")
        self.queue.cancel(service.id)
        now = time.time()
        with self.store.transaction():
            for op in self._pending_ops(service.id):
                if op.status == "PENDING":
                    self.store.update_operation(
                        op.id,
                        status="FAILED",
                        message="cancelled: the service is being deleted",
                        ended_at=now,
                        updated_at=now,
                    )
        return self._transition(service, "DELETE_SERVICE")

    def _transition(self, service: Service, op_type: str) -> tuple[Service, str]:
        with self.store.transaction():
            op_id = self._enqueue(service, op_type)
            self.store.update_service(
                service.id, status="OPERATION_IN_PROGRESS", updated_at=time.time()
            )
        self._started(service, service.status)
        return self.store.get_service(service.id), op_id

    def _started(self, service: Service, previous: str | None) -> None:
        """An operation was queued: say so (an event, if the status moved), wake the dispatcher."""
        self.journal.service_status(service, previous, "OPERATION_IN_PROGRESS")
        self.queue.wake()

    def list_operations(self, arn: str, max_results: int | None, token: str | None) -> Page:
        service = self.service(arn)
        return self.pager.page(
            self.store.list_operations(service.id),
            max_results,
            token,
            listing=f"ListOperations {service.id}",
        )

    # -- tags ---------------------------------------------------------------------

    def _taggable(self, arn: str) -> None:
        service = self.store.service_by_arn(arn)
        if service is not None:
            if service.status == "DELETED":
                raise InvalidState(f"Resource {arn} is deleted")
            return
        if self.store.get_connection(arn) is not None or self.vpc_ingress.taggable(arn):
            return
        connector = self.store.get_vpc_connector(arn)
        if connector is not None and connector["status"] == "ACTIVE":
            return
        configs = (self.store.get_configuration(t, arn) for t in CONFIGURATION_TABLES.values())
        if not any(row and row["status"] == "ACTIVE" for row in configs):
            raise ResourceNotFound(f"Resource {arn} not found")

    def tag_resource(self, arn: str, tags: list[dict[str, str]]) -> None:
        self._taggable(arn)
        new = tag_dict(tags)
        self._worker_tags(arn, new)
        if len({**self.store.get_tags(arn), **new}) > MAX_TAGS:
            raise InvalidRequest(f"Tags: a resource can have at most {MAX_TAGS} tags")
        self.store.put_tags(arn, new)

    def untag_resource(self, arn: str, keys: list[str]) -> None:
        self._taggable(arn)
        self._worker_tags(arn, keys)
        self.store.remove_tags(arn, keys)

    def _worker_tags(self, arn: str, keys: Iterable[str]) -> None:
        service = self.store.service_by_arn(arn)
        if service is not None:
            check_tag_change(bool(service.spec.worker), keys)

    def list_tags(self, arn: str) -> dict[str, str]:
        self._taggable(arn)
        return self.store.get_tags(arn)
