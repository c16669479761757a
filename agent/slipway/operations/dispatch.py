"""Runs the queued operations: the first one of each service, one at a time per
service, each as a task on the runner; and finishes them, setting the operation's and
the service's status and saying so once in the journal.

Two faults must not wedge the agent. An operation that kills the agent is found
IN_PROGRESS by the next one: each restart that cut it off is counted in its row, and at
``operation_max_interruptions`` it ends FAILED instead of running again; until then the
interrupted ones run one at a time, so an innocent one is not cut off with the culprit
twice. And when the store fails (locked, disk I/O), an operation's end that could not be
written is written again on each dispatch pass, and ``/healthz`` says so meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from typing import Any

from ..backends import Backend
from ..config import Settings
from ..errors import InvalidRequest, SlipwayError
from ..feedback import Feedback
from ..records import Operation, Service
from ..store import Store
from .journal import Journal
from .queue import ACTIVE_STATUSES, DEPLOYING_OPS, OperationQueue
from .rollout import Rollout
from .runner import Runner, Task
from .testhook import crash_if_named

log = logging.getLogger("slipway.operations")

# Operation type -> service status when it succeeds / fails (None: as it was).
OUTCOME = {
    "CREATE_SERVICE": ("RUNNING", "CREATE_FAILED"),
    "START_DEPLOYMENT": ("RUNNING", None),
    "UPDATE_SERVICE": ("RUNNING", None),
    "RESUME_SERVICE": ("RUNNING", "PAUSED"),
    "PAUSE_SERVICE": ("PAUSED", None),
    "DELETE_SERVICE": ("DELETED", "DELETE_FAILED"),
}


class Dispatcher:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        backend: Backend,
        queue: OperationQueue,
        journal: Journal,
        rollout: Rollout,
        runner: Runner,
        feedback: Feedback,
    ) -> None:
        self.store = store
        self.settings = settings
        self.backend = backend
        self.queue = queue
        self.journal = journal
        self.rollout = rollout
        self.runner = runner
        self.feedback = feedback
        self.max_interruptions = settings.operation_max_interruptions
        if self.max_interruptions < 1:
            raise InvalidRequest(
                f"operation_max_interruptions must be 1 or more, not {self.max_interruptions}"
            )
        # Operations whose end the store refused, by id: (op, ok, message, the refusal).
        self._unrecorded: dict[str, tuple[Operation, bool, str, str]] = {}
        self._unrecorded_lock = threading.Lock()
        # The one operation an agent restart cut off that runs now, if any (by id).
        self._suspect: set[str] = set()

    def recover(self) -> None:
        """Pick up operations a previous agent left IN_PROGRESS, counting the restart that
        cut each off, and clear the build directories it left behind."""
        shutil.rmtree(self.settings.data_dir / "builds", ignore_errors=True)
        for op in self.store.operations_with_status("IN_PROGRESS"):
            service = self.store.get_service(op.service_id)
            if service and service.live_deployment_id == op.id:
                # The route already switched: only the old instances were left to stop.
                kept = self.store.get_split(service.id).kept()
                self.rollout.stop_instances(service.id, keep={op.id, *kept})
                self.finish(op, service, ok=True, message="completed after an agent restart")
                continue
            split = self.store.get_split(op.service_id)
            if op.id in split.shares:  # cut off in a rollout step: the old one takes all
                self.store.put_split(op.service_id, split.without_shares())
            for inst in self.backend.list_instances(op.service_id):
                if inst.deployment_id == op.id:
                    self.backend.stop_instance(inst.id, timeout=2)
            count = op.interruptions + 1
            self.store.update_operation(op.id, interruptions=count)
            if count >= self.max_interruptions:
                message = (
                    f"interrupted {count} times by agent restarts; not run again"
                    " (setting operation_max_interruptions)"
                )
                log.error("operation %s %s of %s: %s", op.type, op.id, op.service_id, message)
                self.journal.deploy_log(op, f"[AppRunner] Failed: {message}")
                self.finish(op, service, ok=False, message=message)
                continue
            self.store.update_operation(
                op.id,
                status="PENDING",
                message=f"restarted after an agent restart (interrupted {count} times)",
            )
            log.warning("operation %s %s restarts after an agent restart", op.type, op.id)

    def dispatch_once(self) -> None:
        """Start the first pending operation of every service that has nothing under way;
        of those an agent restart cut off, one at a time."""
        self._record_unrecorded()
        first_per_service: dict[str, Operation] = {}
        for op in self.store.operations_with_status(*ACTIVE_STATUSES):
            first_per_service.setdefault(op.service_id, op)
        with self._unrecorded_lock:
            unrecorded = set(self._unrecorded)
        for service_id, op in first_per_service.items():
            if op.status != "PENDING" or op.id in unrecorded:
                continue  # under way, or ended (and only its end still to be written)
            if op.interruptions and self._suspect:
                continue
            if not self.queue.claim(service_id):
                continue
            if op.interruptions:
                self._suspect.add(op.id)
            self.runner.spawn(self.run(op), lambda _result, error, op=op: self._ended(op, error))

    def problems(self) -> list[str]:
        """One line per operation whose end the store would not take yet, for ``/healthz``."""
        with self._unrecorded_lock:
            return [
                f"operation {op.id} of service {op.service_id} ended ({message}) but the"
                f" store refused to record it: {why}; retried on every dispatch"
                for op, _, message, why in self._unrecorded.values()
            ]

    def _record_unrecorded(self) -> None:
        with self._unrecorded_lock:
            waiting = list(self._unrecorded.values())
        for op, ok, message, _ in waiting:
            self._end(op, ok, message)

    def _end(self, op: Operation, ok: bool, message: str) -> None:
        """Finish ``op``; if the store refuses, keep it to try again on the next pass
        (its service's queue stays blocked by the IN_PROGRESS row until then)."""
        try:
            self.finish(op, self.store.get_service(op.service_id), ok=ok, message=message)
        except SlipwayError as exc:
            log.error("operation %s: its end could not be recorded: %s", op.id, exc.message)
            with self._unrecorded_lock:
                self._unrecorded[op.id] = (op, ok, message, exc.message)
            return
        with self._unrecorded_lock:
            self._unrecorded.pop(op.id, None)

    def _ended(self, op: Operation, error: BaseException | None) -> None:
        try:
            if isinstance(error, SlipwayError):  # the store failed on its way
                self._end(op, False, error.message)
            elif error is not None:  # a bug must not wedge the service's queue
                log.error("operation %s crashed", op.id, exc_info=error)
                self._end(op, False, "internal error; see the agent log")
        finally:
            self._suspect.discard(op.id)
            if op.type == "DELETE_SERVICE":
                self.queue.uncancel(op.service_id)
            self.queue.release(op.service_id)

    def run(self, op: Operation) -> Task:
        """One operation from IN_PROGRESS to its end."""
        now = time.time()
        self.store.update_operation(op.id, status="IN_PROGRESS", started_at=now, updated_at=now)
        service = self.store.get_service(op.service_id)
        self.journal.operation_status(service, op, "IN_PROGRESS")
        op = dataclasses.replace(op, status="IN_PROGRESS")
        self.journal.note(service.id, f"{op.type} operation {op.id} started")
        crash_if_named(service.name)
        try:
            message = yield from self.rollout.execute(op, service)
        except SlipwayError as exc:
            self.journal.deploy_log(op, f"[AppRunner] Failed: {exc.message}")
            self._end(op, False, exc.message)
            return
        self._end(op, True, message)

    def finish(self, op: Operation, service: Service, *, ok: bool, message: str) -> None:
        now = time.time()
        status = "SUCCEEDED" if ok else "FAILED"
        if not ok and op.type == "UPDATE_SERVICE" and service.live_deployment_id:
            status = "ROLLBACK_SUCCEEDED"
            message = f"{message}; the previous configuration keeps serving"
        success, failure = OUTCOME[op.type]
        with self.store.transaction():
            self.store.update_operation(
                op.id, status=status, message=message, ended_at=now, updated_at=now
            )
            more = [
                o for o in self.store.list_operations(service.id) if o.status in ACTIVE_STATUSES
            ]
            new_status = success if ok else failure
            if new_status is None:
                new_status = "RUNNING" if service.live_deployment_id else "CREATE_FAILED"
            fields: dict[str, Any] = {"updated_at": now}
            if more and new_status != "DELETED":
                new_status = "OPERATION_IN_PROGRESS"
            fields["status"] = new_status
            if new_status == "DELETED":
                fields["deleted_at"] = now
            self.store.update_service(service.id, **fields)
        self.journal.operation_status(service, op, status, message)
        self.journal.service_status(service, service.status, new_status, message)
        self.journal.deploy_log(op, f"[AppRunner] Operation {status}: {message}")
        if op.type in DEPLOYING_OPS:
            self.feedback.finished(service, op, ok=ok, message=message)
        self.journal.note(service.id, f"{op.type} operation {op.id} ended {status}: {message}")
