"""Queries of console sessions: a digest of each session's cookie (never the cookie
itself), the key it acts as, its CSRF token and when it ends; kept here so an agent
restart leaves people signed in and a sign-out ends the session for good."""

from __future__ import annotations

from typing import Any

from .base import StoreBase


class ConsoleSessionTables(StoreBase):
    def put_console_session(self, digest: str, key_id: str, csrf: str, expires_at: float) -> None:
        row = {"digest": digest, "key_id": key_id, "csrf": csrf, "expires_at": expires_at}
        with self.transaction():
            self.db["console_sessions"].upsert(row, pk="digest")

    def get_console_session(self, digest: str) -> dict[str, Any] | None:
        return self._one(
            "SELECT key_id, csrf, expires_at FROM console_sessions WHERE digest = ?", (digest,)
        )

    def delete_console_sessions(self, digest: str | None = None, before: float = 0.0) -> None:
        """The session of ``digest`` (a sign-out), and every one that ended before
        ``before``."""
        with self.transaction():
            self.db.execute(
                "DELETE FROM console_sessions WHERE digest = ? OR expires_at < ?",
                (digest, before),
            )
