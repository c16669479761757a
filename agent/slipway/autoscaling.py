"""Auto scaling configurations: App Runner's named, revisioned scaling settings, their
quotas, and the default a service gets when it names none.

Apart from ``services.py`` because they are a resource of their own, with their own
calls (Create, Describe, List, Delete, UpdateDefault, ListServicesFor); a service only
names one. ``Services`` hands those calls to ``AutoScalingConfigurations``; what every
revisioned kind shares (ARNs, revisions, quotas) is in ``revisioned.py``.
"""

from __future__ import annotations

import time
from typing import Any

from .config import Settings
from .errors import InvalidRequest, ResourceNotFound
from .models import ServiceSpec
from .revisioned import DEFAULT_NAME, Quotas, RevisionedConfigurations
from .store import Store

DEFAULT_ASC_NAME = DEFAULT_NAME
DEFAULT_ASC_ID = "0" * 31 + "1"
DEFAULT_ASC = {"max_concurrency": 100, "min_size": 1, "max_size": 25}
MAX_INSTANCES = 25  # App Runner's ceiling for MaxSize


class AutoScalingConfigurations(RevisionedConfigurations):
    """The rules of the auto scaling calls; rows are plain dicts from the store."""

    kind = "autoscalingconfiguration"
    label = "Auto scaling configuration"
    name_member = "AutoScalingConfigurationName"
    default_creatable = True  # the model and the guide: DefaultConfiguration takes revisions

    def __init__(self, store: Store, settings: Settings) -> None:
        quotas = Quotas(
            names=settings.auto_scaling_name_quota,
            revisions=settings.auto_scaling_revision_quota,
            names_setting="auto_scaling_name_quota",
            revisions_setting="auto_scaling_revision_quota",
        )
        super().__init__(store, settings, quotas)

    def ensure_default(self) -> None:
        arn = self.arn(DEFAULT_ASC_NAME, 1, DEFAULT_ASC_ID)
        if self.row(arn) is None:
            self.store.insert_configuration(
                self.table,
                {
                    "arn": arn,
                    "name": DEFAULT_ASC_NAME,
                    "revision": 1,
                    "status": "ACTIVE",
                    "is_default": 1,
                    "created_at": time.time(),
                    **DEFAULT_ASC,
                },
            )

    def default(self) -> dict[str, Any]:
        """The configuration a service gets when it names none."""
        rows = [r for r in self.rows() if r["is_default"]]
        return rows[-1] if rows else self.rows(DEFAULT_ASC_NAME)[0]

    def for_spec(self, spec: ServiceSpec) -> dict[str, Any]:
        if spec.auto_scaling_arn:
            return self.get(spec.auto_scaling_arn)
        return self.default()

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        values = {
            "max_concurrency": params.get("MaxConcurrency", DEFAULT_ASC["max_concurrency"]),
            "min_size": params.get("MinSize", DEFAULT_ASC["min_size"]),
            "max_size": params.get("MaxSize", DEFAULT_ASC["max_size"]),
            "is_default": 0,
        }
        if values["max_size"] > MAX_INSTANCES:
            raise InvalidRequest(
                f"MaxSize ({values['max_size']}) must not be greater than {MAX_INSTANCES}"
            )
        if values["min_size"] > values["max_size"]:
            raise InvalidRequest(
                f"MinSize ({values['min_size']}) must not be greater than MaxSize"
                f" ({values['max_size']})"
            )
        return self.add_revision(params["AutoScalingConfigurationName"], values, params.get("Tags"))

    def has_associated_service(self, row: dict[str, Any]) -> bool:
        return bool(self._services_using(row["arn"]))

    def update_default(self, arn: str) -> dict[str, Any]:
        """Make one configuration the default for services created from now on."""
        row = self.get(arn)
        with self.store.transaction():
            for other in self.rows():
                if other["is_default"] and other["arn"] != row["arn"]:
                    self.store.update_configuration(self.table, other["arn"], is_default=0)
            self.store.update_configuration(self.table, row["arn"], is_default=1)
        return self.row(row["arn"])

    def services_for(self, arn: str) -> list[str]:
        return self._services_using(self.get(arn)["arn"])

    def _services_using(self, asc_arn: str) -> list[str]:
        arns = []
        for service in self.store.list_services():
            try:
                if self.for_spec(service.spec)["arn"] == asc_arn:
                    arns.append(service.arn)
            except ResourceNotFound:
                continue
        return arns

    def delete(self, arn: str, delete_all: bool) -> dict[str, Any]:
        row = self.get(arn)
        targets = self.rows(row["name"]) if delete_all else [row]
        for target in targets:
            if target["is_default"]:
                raise InvalidRequest(
                    f"Auto scaling configuration {target['arn']} is the default; make another"
                    " one the default first"
                )
            if self.has_associated_service(target):
                raise InvalidRequest(
                    f"Auto scaling configuration {target['arn']} is used by a service;"
                    " move the service to another configuration first"
                )
        self.deactivate(targets)
        return self.row(row["arn"])
