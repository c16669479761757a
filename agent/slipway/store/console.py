"""Queries of the console's sign-ins: sessions and one-time links, each by a digest of
its token (never the token itself), the key it acts as and when it ends; kept here so an
agent restart leaves people signed in and links working, and a sign-out or a used link
ends for good."""

from __future__ import annotations

from typing import Any

from .base import StoreBase


class ConsoleSessionTables(StoreBase):
    def put_console_session(self, digest: str, key_id: str, expires_at: float) -> None:
        row = {"digest": digest, "key_id": key_id, "expires_at": expires_at}
        with self.transaction():
            self.db["console_sessions"].upsert(row, pk="digest")

    def get_console_session(self, digest: str) -> dict[str, Any] | None:
        return self._one(
            "SELECT key_id, expires_at FROM console_sessions WHERE digest = ?", (digest,)
        )

    def delete_console_sessions(self, digest: str | None = None, before: float = 0.0) -> None:
        """The session of ``digest`` (a sign-out), and every one that ended before
        ``before``."""
        with self.transaction():
            self.db.execute(
                "DELETE FROM console_sessions WHERE digest = ? OR expires_at < ?",
                (digest, before),
            )

    def put_console_link(self, digest: str, key_id: str, expires_at: float, now: float) -> None:
        """A new sign-in link; the ones that ended before ``now`` go."""
        with self.transaction():
            self.db.execute("DELETE FROM console_links WHERE expires_at <= ?", (now,))
            self.db["console_links"].insert(
                {"digest": digest, "key_id": key_id, "expires_at": expires_at}
            )

    def take_console_link(self, digest: str) -> dict[str, Any] | None:
        """The link of ``digest``, gone from the store in the same step: two openers of
        one link cannot both have it."""
        with self.transaction():
            row = self.db.execute(
                "DELETE FROM console_links WHERE digest = ? RETURNING key_id, expires_at",
                (digest,),
            ).fetchone()
        return None if row is None else {"key_id": row[0], "expires_at": row[1]}
