"""An in-memory Checker for unit tests of the custom-domain rules: no DNS, no Caddy."""

from __future__ import annotations

from .check import Check


class FakeChecker:
    """DNS points here for names in ``dns_ok``; Caddy has certificates for ``tls_ok``."""

    def __init__(self) -> None:
        self.dns_ok: set[str] = set()
        self.tls_ok: set[str] = set()

    def dns(self, name: str) -> Check:
        return Check(True) if name in self.dns_ok else Check(False, f"{name} is not here")

    def tls(self, name: str) -> Check:
        return Check(True) if name in self.tls_ok else Check(False, f"no certificate for {name}")
