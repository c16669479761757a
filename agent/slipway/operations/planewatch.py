"""The data plane's health as users see it: what failed (the router is not installed,
not running, or refused a change) said in every service's events stream when it starts
and when it ends, and on ``/healthz`` while it lasts.

Why here, apart from the router: the router says which and why in its error (it alone
knows HAProxy from Caddy); the reconcile pass, which retries every interval, is what
knows it is still failing. Said only on change, so a failure that lasts a day is one
line, not one per pass.
"""

from __future__ import annotations

import threading

from ..store import Store
from .journal import Journal


class PlaneWatch:
    def __init__(self, store: Store, journal: Journal) -> None:
        self.store = store
        self.journal = journal
        self._problem: str | None = None
        self._told: set[str] = set()  # services whose events stream has the current one
        self._lock = threading.Lock()

    def observe(self, problem: str | None) -> None:
        """The outcome of one pass of keeping the data plane and applying routes: None
        when it went through, else the router's reason. A service created while a
        failure lasts is told at the next pass."""
        with self._lock:
            before, self._problem = self._problem, problem
            if problem != before:
                self._told = set()
            if problem is None and before is None:
                return
            services = [s for s in self.store.list_services() if s.id not in self._told]
            if problem is None:
                message = "The data plane applies routes again"
            else:
                message = (
                    f"The data plane failed: {problem}. The last good routes keep serving;"
                    " retried at every reconcile pass"
                )
            for service in services:
                self.journal.note(service.id, message)
                self._told.add(service.id)

    def problems(self) -> list[str]:
        """For ``/healthz``: the data plane's failure, while it lasts."""
        with self._lock:
            problem = self._problem
        return (
            [] if problem is None else [f"data plane: {problem}; retried at every reconcile pass"]
        )
