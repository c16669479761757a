"""Where the producers of work (API calls, polls, the scaler, upkeep) meet the
dispatcher, below both: one thing at a time per service, cancellation, and a wake-up.

The operations themselves are rows in the store (durable, ordered); this object holds
only what lives as long as the agent: which services have something under way (an
operation, a replacement, a scaling move), which deployments were asked to stop, and
the event that tells the dispatcher to look now rather than at its next tick.
"""

from __future__ import annotations

import threading

from ..errors import SlipwayError

ACTIVE_STATUSES = ("PENDING", "IN_PROGRESS")
DEPLOYING_OPS = ("CREATE_SERVICE", "START_DEPLOYMENT", "UPDATE_SERVICE", "RESUME_SERVICE")


class Cancelled(SlipwayError):
    pass


class OperationQueue:
    def __init__(self) -> None:
        self.wakeup = threading.Event()
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._cancelled: set[str] = set()

    def wake(self) -> None:
        """Something was queued: the dispatcher looks at once."""
        self.wakeup.set()

    def claim(self, service_id: str) -> bool:
        """Take the service for one piece of work; False when something else has it."""
        with self._lock:
            if service_id in self._busy:
                return False
            self._busy.add(service_id)
            return True

    def release(self, service_id: str) -> None:
        with self._lock:
            self._busy.discard(service_id)
        self.wake()

    def busy(self) -> set[str]:
        with self._lock:
            return set(self._busy)

    def cancel(self, service_id: str) -> None:
        """Ask the work under way for a service to stop (DeleteService)."""
        with self._lock:
            self._cancelled.add(service_id)

    def uncancel(self, service_id: str) -> None:
        with self._lock:
            self._cancelled.discard(service_id)

    def check(self, service_id: str) -> None:
        """Raise ``Cancelled`` if the service's work was asked to stop."""
        with self._lock:
            cancelled = service_id in self._cancelled
        if cancelled:
            raise Cancelled("cancelled: the service is being deleted")
