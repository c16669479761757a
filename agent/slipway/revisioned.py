"""What App Runner's revisioned configurations share: auto scaling and observability
configurations are named, each name has revisions 1, 2, 3... (never handed out twice),
quotas bound the names and the revisions of a name, ``DefaultConfiguration`` is not a
name users create, and a deleted revision stays readable as INACTIVE.

Apart from ``autoscaling.py`` and ``observability.py`` so that both kinds follow one
rule for ARNs (full, ``.../name`` or ``.../name/revision``), revisions and quotas; each
subclass adds only what its kind holds and who uses it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from .config import Settings
from .errors import InvalidRequest, QuotaExceeded, ResourceNotFound
from .store import Store
from .store.configurations import CONFIGURATION_TABLES
from .tags import tag_dict

DEFAULT_NAME = "DefaultConfiguration"


@dataclass(frozen=True)
class Quotas:
    """Names in use (the built-in default not counted), and ACTIVE revisions per name."""

    names: int = 10
    revisions: int = 10
    names_setting: str = ""  # the setting a refusal names, when there is one
    revisions_setting: str = ""


class RevisionedConfigurations:
    """The rules every revisioned kind shares; rows are plain dicts from the store."""

    kind = ""  # the resource type in the ARN: "autoscalingconfiguration"...
    label = ""  # how messages name one: "Auto scaling configuration"...
    name_member = ""  # the request member that names one: "AutoScalingConfigurationName"...
    default_creatable = False  # whether users may add revisions of DefaultConfiguration

    def __init__(self, store: Store, settings: Settings, quotas: Quotas) -> None:
        self.store = store
        self.settings = settings
        self.quotas = quotas
        self.table = CONFIGURATION_TABLES[self.kind]

    def arn(self, name: str, revision: int, config_id: str) -> str:
        s = self.settings
        resource = f"{self.kind}/{name}/{revision}/{config_id}"
        return f"arn:aws:apprunner:{s.region}:{s.account_id}:{resource}"

    def rows(self, name: str | None = None) -> list[dict[str, Any]]:
        """ACTIVE revisions (of one name), by name then revision."""
        return self.store.list_configurations(self.table, name)

    def row(self, arn: str) -> dict[str, Any] | None:
        """One revision by full ARN, ACTIVE or not."""
        return self.store.get_configuration(self.table, arn)

    def get(self, arn: str) -> dict[str, Any]:
        """A configuration by full ARN, or the latest ACTIVE revision when the ARN names
        only ``name`` or ``name/revision`` (App Runner accepts all three forms)."""
        row = self.row(arn)
        if row and row["status"] == "ACTIVE":
            return row
        s = self.settings
        prefix = f"arn:aws:apprunner:{s.region}:{s.account_id}:{self.kind}/"
        parts = arn[len(prefix) :].split("/") if arn.startswith(prefix) else []
        if 1 <= len(parts) <= 2 and parts[0]:
            revisions = self.rows(parts[0])
            if len(parts) == 2:
                revisions = [r for r in revisions if str(r["revision"]) == parts[1]]
            if revisions:
                return revisions[-1]
        raise ResourceNotFound(f"{self.label} {arn} not found")

    def active(self, name: str | None, latest_only: bool) -> list[dict[str, Any]]:
        rows = self.rows(name)
        if latest_only:
            latest = {r["name"]: r for r in rows}
            rows = [r for r in rows if latest[r["name"]] is r]
        return rows

    def is_latest(self, row: dict[str, Any]) -> bool:
        return self.rows(row["name"])[-1]["arn"] == row["arn"]

    def add_revision(
        self, name: str, values: dict[str, Any], tags: list[dict[str, str]] | None
    ) -> dict[str, Any]:
        """The next revision of ``name`` holding ``values``, with its tags, within the
        quotas; nothing is written when a check fails."""
        if name == DEFAULT_NAME and not self.default_creatable:
            raise InvalidRequest(f"{self.name_member}: {name} is reserved")
        tag_map = tag_dict(tags or [])
        label = self.label.lower()
        with self.store.transaction():
            active = self.rows()
            names = {r["name"] for r in active if r["name"] != DEFAULT_NAME}
            q = self.quotas
            if name != DEFAULT_NAME and name not in names and len(names) >= q.names:
                raise QuotaExceeded(
                    f"You have reached the maximum of {q.names} {label} names"
                    + _setting(q.names_setting)
                )
            if sum(r["name"] == name for r in active) >= q.revisions:
                raise QuotaExceeded(
                    f"{self.label} {name} already has {q.revisions} active revisions, the"
                    f" maximum{_setting(q.revisions_setting)}; delete one first"
                )
            revision = self.store.max_configuration_revision(self.table, name) + 1
            arn = self.arn(name, revision, uuid.uuid4().hex)
            self.store.insert_configuration(
                self.table,
                {
                    "arn": arn,
                    "name": name,
                    "revision": revision,
                    "status": "ACTIVE",
                    "created_at": time.time(),
                    **values,
                },
            )
            if tag_map:
                self.store.put_tags(arn, tag_map)
        return self.store.get_configuration(self.table, arn)

    def deactivate(self, rows: list[dict[str, Any]]) -> None:
        """Mark revisions deleted (INACTIVE), all in one transaction."""
        now = time.time()
        with self.store.transaction():
            for row in rows:
                self.store.update_configuration(
                    self.table, row["arn"], status="INACTIVE", deleted_at=now
                )


def _setting(name: str) -> str:
    return f" ({name})" if name else ""
