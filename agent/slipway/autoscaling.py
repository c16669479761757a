"""Auto scaling configurations: App Runner's named, revisioned scaling settings, their
quotas, and the default a service gets when it names none.

Apart from ``services.py`` because they are a resource of their own, with their own
calls (Create, Describe, List, Delete, UpdateDefault, ListServicesFor); a service only
names one. ``Services`` hands those calls to ``AutoScalingConfigurations``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from .config import Settings
from .errors import InvalidRequest, QuotaExceeded, ResourceNotFound
from .models import ServiceSpec
from .store import Store
from .tags import tag_dict

DEFAULT_ASC_NAME = "DefaultConfiguration"
DEFAULT_ASC_ID = "0" * 31 + "1"
DEFAULT_ASC = {"max_concurrency": 100, "min_size": 1, "max_size": 25}
MAX_INSTANCES = 25  # App Runner's ceiling for MaxSize


class AutoScalingConfigurations:
    """The rules of the auto scaling calls; rows are plain dicts from the store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def _arn(self, resource: str) -> str:
        s = self.settings
        return f"arn:aws:apprunner:{s.region}:{s.account_id}:{resource}"

    def ensure_default(self) -> None:
        arn = self._arn(f"autoscalingconfiguration/{DEFAULT_ASC_NAME}/1/{DEFAULT_ASC_ID}")
        if self.store.get_auto_scaling(arn) is None:
            self.store.insert_auto_scaling(
                {
                    "arn": arn,
                    "name": DEFAULT_ASC_NAME,
                    "revision": 1,
                    "status": "ACTIVE",
                    "is_default": 1,
                    "created_at": time.time(),
                    **DEFAULT_ASC,
                }
            )

    def get(self, arn: str) -> dict[str, Any]:
        """A configuration by full ARN, or the latest revision when the ARN names only
        ``name`` or ``name/revision`` (App Runner accepts all three forms)."""
        row = self.store.get_auto_scaling(arn)
        if row and row["status"] == "ACTIVE":
            return row
        prefix = self._arn("autoscalingconfiguration/")
        parts = arn[len(prefix) :].split("/") if arn.startswith(prefix) else []
        if 1 <= len(parts) <= 2 and parts[0]:
            revisions = self.store.list_auto_scaling(parts[0])
            if len(parts) == 2:
                revisions = [r for r in revisions if str(r["revision"]) == parts[1]]
            if revisions:
                return revisions[-1]
        raise ResourceNotFound(f"Auto scaling configuration {arn} not found")

    def default(self) -> dict[str, Any]:
        """The configuration a service gets when it names none."""
        rows = [r for r in self.store.list_auto_scaling() if r["is_default"]]
        return rows[-1] if rows else self.store.list_auto_scaling(DEFAULT_ASC_NAME)[0]

    def for_spec(self, spec: ServiceSpec) -> dict[str, Any]:
        if spec.auto_scaling_arn:
            return self.get(spec.auto_scaling_arn)
        return self.default()

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["AutoScalingConfigurationName"]  # DefaultConfiguration too (the model)
        values = {
            "max_concurrency": params.get("MaxConcurrency", DEFAULT_ASC["max_concurrency"]),
            "min_size": params.get("MinSize", DEFAULT_ASC["min_size"]),
            "max_size": params.get("MaxSize", DEFAULT_ASC["max_size"]),
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
        names_quota = self.settings.auto_scaling_name_quota
        revisions_quota = self.settings.auto_scaling_revision_quota
        with self.store.transaction():
            active = self.store.list_auto_scaling()
            names = {r["name"] for r in active if r["name"] != DEFAULT_ASC_NAME}
            if name != DEFAULT_ASC_NAME and name not in names and len(names) >= names_quota:
                raise QuotaExceeded(
                    f"You have reached the maximum of {names_quota} auto scaling"
                    " configuration names (auto_scaling_name_quota)"
                )
            if sum(r["name"] == name for r in active) >= revisions_quota:
                raise QuotaExceeded(
                    f"Auto scaling configuration {name} already has {revisions_quota} active"
                    " revisions, the maximum (auto_scaling_revision_quota); delete one first"
                )
            revision = self.store.max_auto_scaling_revision(name) + 1
            arn = self._arn(f"autoscalingconfiguration/{name}/{revision}/{uuid.uuid4().hex}")
            self.store.insert_auto_scaling(
                {
                    "arn": arn,
                    "name": name,
                    "revision": revision,
                    "status": "ACTIVE",
                    "is_default": 0,
                    "created_at": time.time(),
                    **values,
                }
            )
            tags = tag_dict(params.get("Tags") or [])
            if tags:
                self.store.put_tags(arn, tags)
        return self.store.get_auto_scaling(arn)

    def active(self, name: str | None, latest_only: bool) -> list[dict[str, Any]]:
        rows = self.store.list_auto_scaling(name)
        if latest_only:
            latest = {r["name"]: r for r in rows}
            rows = [r for r in rows if latest[r["name"]] is r]
        return rows

    def is_latest(self, row: dict[str, Any]) -> bool:
        return self.store.list_auto_scaling(row["name"])[-1]["arn"] == row["arn"]

    def has_associated_service(self, row: dict[str, Any]) -> bool:
        return bool(self._services_using(row["arn"]))

    def update_default(self, arn: str) -> dict[str, Any]:
        """Make one configuration the default for services created from now on."""
        row = self.get(arn)
        with self.store.transaction():
            for other in self.store.list_auto_scaling():
                if other["is_default"] and other["arn"] != row["arn"]:
                    self.store.update_auto_scaling(other["arn"], is_default=0)
            self.store.update_auto_scaling(row["arn"], is_default=1)
        return self.store.get_auto_scaling(row["arn"])

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
        targets = self.store.list_auto_scaling(row["name"]) if delete_all else [row]
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
        now = time.time()
        with self.store.transaction():
            for target in targets:
                self.store.update_auto_scaling(target["arn"], status="INACTIVE", deleted_at=now)
        return self.store.get_auto_scaling(row["arn"])
