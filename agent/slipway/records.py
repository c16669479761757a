"""The typed records that cross the seams between the store, the rules, the operations
and the API shapes. The store builds them from rows and takes them back
(``from_row``/``to_row``); nothing above it handles a row.

They are frozen: a changed record is a new one (``dataclasses.replace``), so a record
handed to another thread or kept for an event never changes under its holder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .models import ServiceSpec


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    arn: str
    hostname: str  # the DNS label it answers on
    status: str
    spec: ServiceSpec
    created_at: float
    updated_at: float
    live_deployment_id: str | None = None  # the operation whose instances serve
    live_revision: str | None = None
    latest_revision: str | None = None  # the newest one its source has
    latest_ref: str | None = None
    deleted_at: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Service:
        return cls(**{**row, "spec": ServiceSpec.from_dict(row["spec"])})

    def to_row(self) -> dict[str, Any]:
        return {**_fields(self), "spec": self.spec.to_dict()}


@dataclass(frozen=True)
class Operation:
    id: str
    service_id: str
    target_arn: str
    type: str  # CREATE_SERVICE, START_DEPLOYMENT, ...
    status: str  # PENDING, IN_PROGRESS, SUCCEEDED, ...
    created_at: float
    updated_at: float
    params: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # queue order, given by the store
    message: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    previous: dict[str, Any] | None = None
    interruptions: int = 0  # agent restarts that cut it off (dispatch.Dispatcher.recover)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Operation:
        return cls(**{**row, "params": row.get("params") or {}})

    def to_row(self) -> dict[str, Any]:
        return _fields(self)


@dataclass(frozen=True)
class Revision:
    """A revision that went live for a service, with the release that ran it."""

    service_id: str
    revision: str
    image: str
    operation_id: str
    detail: dict[str, Any]  # Release.to_dict()
    created_at: float
    id: int | None = None  # given by the store

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Revision:
        return cls(**row)

    def to_row(self) -> dict[str, Any]:
        return {k: v for k, v in _fields(self).items() if not (k == "id" and v is None)}


def _fields(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
