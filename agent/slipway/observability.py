"""Observability configurations: App Runner's named, revisioned tracing settings, and
the rule that ties a service to one (``ObservabilityConfiguration`` of Create and
UpdateService).

Apart from ``services.py`` because they are a resource of their own with their own
calls (Create, Describe, List, Delete); a service only names one. What every
revisioned kind shares (ARNs, revisions, quotas) is in ``revisioned.py``; what an
enabled configuration does on the host is in ``observe/tracing.py``.
"""

from __future__ import annotations

from typing import Any

from .config import Settings
from .errors import InvalidRequest, ResourceNotFound
from .models import ServiceSpec
from .operations.queue import ACTIVE_STATUSES
from .revisioned import Quotas, RevisionedConfigurations
from .store import Store

ARN_FIELD = "ObservabilityConfiguration.ObservabilityConfigurationArn"


class ObservabilityConfigurations(RevisionedConfigurations):
    """The rules of the observability calls; rows are plain dicts from the store."""

    kind = "observabilityconfiguration"
    label = "Observability configuration"
    name_member = "ObservabilityConfigurationName"

    def __init__(self, store: Store, settings: Settings) -> None:
        trace = settings.trace_settings
        super().__init__(store, settings, Quotas(trace.name_quota, trace.revision_quota))

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        """A new revision; ``TraceConfiguration.Vendor`` AWSXRAY (the model's only one)
        means traces to the host's collector (``trace_endpoint``)."""
        vendor = (params.get("TraceConfiguration") or {}).get("Vendor")
        return self.add_revision(
            params["ObservabilityConfigurationName"], {"trace_vendor": vendor}, params.get("Tags")
        )

    def attach(self, spec: ServiceSpec) -> None:
        """Resolve the configuration a service asks for (full ARN, ``.../name`` for the
        latest revision, or ``.../name/revision``) to the revision it will use, as
        App Runner does: the service keeps that revision when newer ones come."""
        if not spec.observability_arn:
            spec.tracing = False
            return
        try:
            row = self.get(spec.observability_arn)
        except ResourceNotFound as exc:
            raise InvalidRequest(f"{ARN_FIELD}: {exc.message}") from exc
        spec.observability_arn = row["arn"]
        spec.tracing = bool(row["trace_vendor"])

    def users(self, arn: str) -> list[str]:
        """Services that use the revision ``arn``, or will once an update queued or under
        way is done."""
        names = []
        for service in self.store.list_services():
            specs = [service.spec.observability_arn]
            for op in self.store.list_operations(service.id):
                if op.status in ACTIVE_STATUSES and (op.params or {}).get("spec"):
                    specs.append(op.params["spec"].get("observability_arn"))
            if arn in specs:
                names.append(service.name)
        return names

    def delete(self, arn: str) -> dict[str, Any]:
        """Delete one revision (the latest one when ``arn`` names none); refused while a
        service uses it."""
        row = self.get(arn)
        users = self.users(row["arn"])
        if users:
            raise InvalidRequest(
                f"Observability configuration {row['arn']} is used by service"
                f" {', '.join(sorted(users))}; move the service to another configuration"
                " or disable its observability first"
            )
        self.deactivate([row])
        return self.row(row["arn"])
