"""Caddy's on-demand TLS for wildcard custom domains: may it get a certificate now?

A wildcard's hosts get their certificates on their first TLS handshake, so anyone who
can send a handshake with some SNI under ``*.example.com`` makes Caddy ask a CA for a
certificate: unchecked, a stranger could exhaust the CA's rate limits for the domain
(Let's Encrypt: 50 certificates per registered domain per week) or fill the disk.
So Caddy asks the agent first (``ask``), and the agent says yes only for a host that

1. is under a wildcard that Caddy serves (BINDING_CERTIFICATE or ACTIVE),
2. resolves, now, only to this host's addresses (the same DNS check as validation:
   a name that does not point here could never pass the CA's challenge anyway), and
3. fits the wildcard's budget: at most ``per_hour`` distinct hosts approved in any
   hour. A host approved again within the hour (Caddy retrying) costs nothing more.

The budget is kept in memory: an agent restart gives each wildcard a fresh hour,
which bounds issuance at ``per_hour`` per restart, still far from a CA's limits.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..errors import InvalidRequest

WINDOW_SECONDS = 3600.0


@dataclass(frozen=True)
class OnDemandLimits:
    """Hosts of one wildcard that may get a certificate on demand in one hour."""

    per_hour: int = 20

    def check(self) -> None:
        if self.per_hour < 1:
            raise InvalidRequest(
                "ondemand_certs_per_hour must be at least 1 (a wildcard's hosts get"
                f" certificates only on demand), not {self.per_hour}"
            )


class OnDemandBudget:
    """Approvals per wildcard in a sliding hour; thread-safe (asks come concurrently)."""

    def __init__(self, limits: OnDemandLimits) -> None:
        limits.check()
        self.limits = limits
        self._approved: dict[str, OrderedDict[str, float]] = {}
        self._lock = threading.Lock()

    def take(self, wildcard: str, host: str, now: float) -> str | None:
        """Approve ``host`` under ``wildcard`` at ``now``; None, or why not."""
        with self._lock:
            approved = self._approved.setdefault(wildcard, OrderedDict())
            for old, at in list(approved.items()):  # oldest first
                if now - at < WINDOW_SECONDS:
                    break
                del approved[old]
            if host in approved:
                return None
            if len(approved) >= self.limits.per_hour:
                return (
                    f"{wildcard} had {len(approved)} certificates issued on demand within"
                    " the hour (setting ondemand_certs_per_hour)"
                )
            approved[host] = now
            return None
