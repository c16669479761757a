"""Service and operation status changes as App Runner sends them to EventBridge.

Each change becomes one event in EventBridge's envelope (``version``, ``id``,
``detail-type``, ``source``, ``account``, ``time``, ``region``, ``resources``,
``detail``), is stored, and owes one delivery to every notification target whose
pattern matches it, written in the same transaction. Only changes are events: a
status set to what it already was says nothing.

The shapes are those App Runner emits today: detail types ``AppRunner Service
Status Change`` and ``AppRunner Service Operation Status Change``, camelCase
detail members (``previousServiceStatus``, ``operationStatus``, ...), and the
guide's table of operation status codes and messages. The Spanish guide in
``reference/`` shows an older draft of the same events (``Service Status
Change``, PascalCase members); rules written against the running service use
these. slipway's own additions sit under ``detail.slipway`` (the operation id and
type, and the reason slipway gives), where AWS-shaped consumers ignore them.
Scaling has no App Runner event; slipway emits ``AppRunner Service Scaling Change``
(instance counts before and after, or a refused move) in the same envelope.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..store import Store
from .patterns import matches

__all__ = [
    "OPERATION_MESSAGES",
    "OPERATION_STATUS_DETAIL_TYPE",
    "SCALING_DETAIL_TYPE",
    "SERVICE_STATUS_DETAIL_TYPE",
    "EventBus",
    "operation_status_code",
]

SOURCE = "aws.apprunner"
SERVICE_STATUS_DETAIL_TYPE = "AppRunner Service Status Change"
OPERATION_STATUS_DETAIL_TYPE = "AppRunner Service Operation Status Change"
SCALING_DETAIL_TYPE = "AppRunner Service Scaling Change"  # slipway's own
MAX_LIST = 1000

# Operation type -> the stem of its status codes.
_STEMS = {
    "CREATE_SERVICE": "CreateService",
    "DELETE_SERVICE": "DeleteService",
    "UPDATE_SERVICE": "UpdateService",
    "START_DEPLOYMENT": "Deployment",
    "PAUSE_SERVICE": "PauseService",
    "RESUME_SERVICE": "ResumeService",
}
# Operation status -> phase. PENDING and ROLLBACK_IN_PROGRESS have no code: App Runner
# reports an operation when it starts and when it ends. A rolled-back operation failed.
_PHASES = {
    "IN_PROGRESS": "Started",
    "SUCCEEDED": "CompletedSuccessfully",
    "FAILED": "Failed",
    "ROLLBACK_SUCCEEDED": "Failed",
    "ROLLBACK_FAILED": "Failed",
}
# The guide's table "status codes and related messages", every row.
OPERATION_MESSAGES = {
    "CreateServiceStarted": "Service creation started.",
    "CreateServiceCompletedSuccessfully": "Service creation completed successfully.",
    "CreateServiceFailed": "Service creation failed. For details, see service logs.",
    "DeleteServiceStarted": "Service deletion started.",
    "DeleteServiceCompletedSuccessfully": "Service deletion completed successfully.",
    "DeleteServiceFailed": "Service deletion failed.",
    "UpdateServiceStarted": "",  # the guide gives this code no message
    "UpdateServiceCompletedSuccessfully": (
        "Service update completed successfully. New application and configuration is deployed."
    ),
    "UpdateServiceFailed": "Service update failed. For details, see service logs.",
    "DeploymentStarted": "Deployment started.",
    "DeploymentCompletedSuccessfully": "Deployment completed successfully.",
    "DeploymentFailed": "Deployment failed. For details, see service logs.",
    "PauseServiceStarted": "Service pause started.",
    "PauseServiceCompletedSuccessfully": "Service pause completed successfully.",
    "PauseServiceFailed": "Service pause failed.",
    "ResumeServiceStarted": "Service resume started.",
    "ResumeServiceCompletedSuccessfully": "Service resume completed successfully.",
    "ResumeServiceFailed": "Service resume failed.",
}
# The table's second message for UpdateServiceCompletedSuccessfully.
UPDATE_CONFIGURATION_ONLY = "Service update completed successfully. New configuration is deployed."
_FAILED_SERVICE_STATUSES = {"CREATE_FAILED", "DELETE_FAILED"}
_REMEMBERED_OPERATIONS = 4096


def operation_status_code(op_type: str, status: str) -> str | None:
    """The EventBridge ``operationStatus`` for an operation reaching ``status``, or None
    when App Runner sends no event for that step. Pure, so the table is testable."""
    stem, phase = _STEMS.get(op_type), _PHASES.get(status)
    return f"{stem}{phase}" if stem and phase else None


def iso_time(epoch: float) -> str:
    """EventBridge's ``time``: UTC, whole seconds, ``Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventBus:
    """Builds, stores and routes events; the journal calls it where statuses change."""

    def __init__(
        self,
        store: Store,
        *,
        region: str,
        account: str,
        on_event: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.region = region
        self.account = account
        self.on_event = on_event  # e.g. Notifier.wake: deliveries are waiting
        self.clock = clock
        self._lock = threading.Lock()
        self._last_code: OrderedDict[str, str] = OrderedDict()  # operation id -> code

    # -- the two kinds of event ----------------------------------------------------

    def service_status_changed(
        self, service: dict[str, Any], previous: str | None, current: str, message: str = ""
    ) -> dict[str, Any] | None:
        """An event when a service's status changed; None when it did not."""
        if previous == current:
            return None
        detail: dict[str, Any] = {
            "previousServiceStatus": previous,
            "currentServiceStatus": current,
            "serviceName": service.name,
            "serviceId": service.id,
            "message": f"Service status is set to {current}.",
            "severity": "ERROR" if current in _FAILED_SERVICE_STATUSES else "INFO",
        }
        if message:
            detail["slipway"] = {"reason": message}
        return self._emit(service, SERVICE_STATUS_DETAIL_TYPE, detail)

    def operation_status_changed(
        self,
        service: dict[str, Any],
        op: dict[str, Any],
        status: str,
        message: str = "",
        *,
        configuration_only: bool = False,
    ) -> dict[str, Any] | None:
        """An event when an operation reached a step App Runner reports (started,
        completed, failed); None when the step has no code or was already reported.
        ``op.status`` is read as the status before this change."""
        code = operation_status_code(op.type, status)
        if code is None or op.status == status:
            return None
        with self._lock:
            if self._last_code.get(op.id) == code:
                return None
            self._last_code[op.id] = code
            self._last_code.move_to_end(op.id)
            while len(self._last_code) > _REMEMBERED_OPERATIONS:
                self._last_code.popitem(last=False)
        text = OPERATION_MESSAGES[code]
        if code == "UpdateServiceCompletedSuccessfully" and configuration_only:
            text = UPDATE_CONFIGURATION_ONLY
        extra: dict[str, Any] = {"operationId": op.id, "operationType": op.type}
        if message:
            extra["reason"] = message
        detail = {
            "operationStatus": code,
            "serviceName": service.name,
            "serviceId": service.id,
            "message": text,
            "severity": "ERROR" if code.endswith("Failed") else "INFO",
            "slipway": extra,
        }
        return self._emit(service, OPERATION_STATUS_DETAIL_TYPE, detail)

    def service_scaled(
        self,
        service: dict[str, Any],
        previous: int,
        current: int,
        message: str,
        *,
        wanted: int | None = None,
    ) -> dict[str, Any]:
        """slipway's own event: the instance count moved, or (``wanted`` set) a move
        was refused. App Runner emits nothing for scaling; this keeps its envelope."""
        detail: dict[str, Any] = {
            "previousInstanceCount": previous,
            "currentInstanceCount": current,
            "serviceName": service.name,
            "serviceId": service.id,
            "message": message,
            "severity": "INFO" if wanted is None else "ERROR",
        }
        if wanted is not None:
            detail["wantedInstanceCount"] = wanted
        return self._emit(service, SCALING_DETAIL_TYPE, detail)

    # -- storage and routing -------------------------------------------------------

    def _emit(
        self, service: dict[str, Any], detail_type: str, detail: dict[str, Any]
    ) -> dict[str, Any]:
        now = self.clock()
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": SOURCE,
            "account": self.account,
            "time": iso_time(now),
            "region": self.region,
            "resources": [service.arn],
            "detail": detail,
        }
        row = {"service_id": service.id, "time": now, "detail_type": detail_type, "body": event}
        with self.store.transaction():  # no target comes or goes between match and insert
            targets = [
                t["id"] for t in self.store.list_notify_targets() if matches(t["pattern"], event)
            ]
            self.store.add_event(row, targets)
        if targets:
            self.on_event()
        return event

    def list(
        self,
        service_id: str | None = None,
        since: float | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Stored events, oldest first: after the cursor ``after_id`` (to follow), from
        ``since`` on, or else the newest ``limit``. Each row: id, service_id, time,
        detail_type, body (the event)."""
        limit = max(1, min(limit, MAX_LIST))
        return self.store.list_events(service_id, since=since, after_id=after_id, limit=limit)
