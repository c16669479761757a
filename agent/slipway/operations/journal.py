"""The one way to say that something happened to a service: a line in its events
stream (and the agent's log), a line in a deployment's log, and the EventBridge-shaped
events that notification targets receive. Producers (rules, rollouts, the scaler,
domain checks, polls) all speak through it, so the three never disagree."""

from __future__ import annotations

import logging

from ..observe.events import EventBus
from ..observe.logs import LogStore
from ..records import Operation, Service
from .queue import DEPLOYING_OPS

log = logging.getLogger("slipway")


class Journal:
    def __init__(self, logs: LogStore, events: EventBus) -> None:
        self.logs = logs
        self.events = events

    def note(self, service_id: str, message: str) -> None:
        """A line in the service's events stream."""
        log.info("%s", message)
        self.logs.append(service_id, "events", f"[AppRunner] {message}")

    def deploy_log(self, op: Operation, line: str) -> None:
        """A line in the log of a deployment (operations that deploy a revision)."""
        if op.type in DEPLOYING_OPS:
            self.logs.append(op.service_id, f"deployment/{op.id}", line)

    def service_status(
        self, service: Service, previous: str | None, current: str, message: str = ""
    ) -> None:
        self.events.service_status_changed(service, previous, current, message)

    def operation_status(
        self, service: Service, op: Operation, status: str, message: str = ""
    ) -> None:
        self.events.operation_status_changed(service, op, status, message)

    def scaled(self, service: Service, before: int, after: int, reason: str) -> None:
        word = "out" if after > before else "in"
        message = f"Scaled {word} from {before} to {after} instance(s): {reason}"
        self.note(service.id, message)
        self.events.service_scaled(service, before, after, message)

    def scaling_refused(self, service: Service, serving: int, wanted: int, message: str) -> None:
        self.note(service.id, message)
        self.events.service_scaled(service, serving, serving, message, wanted=wanted)

    def went_idle(self, service: Service, before: int, reason: str) -> None:
        """Scale to zero: a scaling change to 0 instances, said as such."""
        message = f"Service went idle: {reason}; {before} instance(s) stopped"
        self.note(service.id, message)
        self.events.service_scaled(service, before, 0, message)

    def woke(self, service: Service, after: int, reason: str) -> None:
        message = f"Service woke: {reason}"
        self.note(service.id, message)
        self.events.service_scaled(service, 0, after, message)

    def wake_failed(self, service: Service, message: str) -> None:
        message = f"Service could not wake: {message}"
        self.note(service.id, message)
        self.events.service_scaled(service, 0, 0, message, wanted=1)
