"""Console sessions: who signed in (an access key), until when, and the CSRF token of
each session; and the one-time sign-in links ``slipway console-link`` prints.

Sessions and links are kept in the store by a digest of their token (never the token),
so an agent restart leaves people signed in and unused links working, and a sign-out or
a used link ends for good. A session's CSRF token is derived from its cookie, so the
store holds nothing a form could be forged with. A session is only as good as its key:
it ends when the key stops being usable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import AuthError

COOKIE = "slipway_console"


@dataclass(frozen=True)
class Session:
    """One signed-in browser: the key it acts as, its CSRF token, when it ends."""

    key_id: str
    csrf: str
    expires_at: float


class SessionTable(Protocol):
    """Where sessions and links are kept (the store's ``console_sessions`` and
    ``console_links``)."""

    def put_console_session(self, digest: str, key_id: str, expires_at: float) -> None: ...

    def get_console_session(self, digest: str) -> dict[str, Any] | None: ...

    def delete_console_sessions(self, digest: str | None = None, before: float = 0.0) -> None: ...

    def put_console_link(self, digest: str, key_id: str, expires_at: float, now: float) -> None: ...

    def take_console_link(self, digest: str) -> dict[str, Any] | None: ...


class SessionExpired(AuthError):
    """A console session that ended (expired, signed out, or its key was disabled)."""


def _digest(token: str) -> str:
    # Only digests are kept, so a copy of the store does not hand out live sessions.
    return hashlib.sha256(token.encode()).hexdigest()


def _csrf(token: str) -> str:
    # Another digest of the cookie: whoever can send the cookie's value can already act,
    # and nobody else can compute this one, from the store or the page.
    return hashlib.sha256(b"csrf:" + token.encode()).hexdigest()


class Sessions:
    def __init__(
        self,
        ttl: float,
        link_ttl: float,
        key_usable: Callable[[str], bool],
        kept: SessionTable,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0 or link_ttl <= 0:
            raise ValueError("console_session_ttl and console_link_ttl must be positive")
        self.ttl = ttl
        self.link_ttl = link_ttl
        self.key_usable = key_usable
        self.clock = clock
        self.kept = kept

    def start(self, key_id: str) -> tuple[str, Session]:
        """A new session for a key whose secret was just proven: its cookie value."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(key_id, _csrf(token), now + self.ttl)
        # An expired session is kept as long again, to say "expired" rather than "ended".
        self.kept.delete_console_sessions(before=now - self.ttl)
        self.kept.put_console_session(_digest(token), key_id, session.expires_at)
        return token, session

    def get(self, token: str | None) -> Session:
        """The live session of a cookie; ``SessionExpired`` says why there is none."""
        if not token:
            raise SessionExpired("Sign in to use the console")
        now = self.clock()
        row = self.kept.get_console_session(_digest(token))
        session = Session(row["key_id"], _csrf(token), row["expires_at"]) if row else None
        if session is not None and session.expires_at <= now:
            raise SessionExpired("Your session expired: sign in again")
        if session is None:
            raise SessionExpired("Your session ended: sign in again")
        if not self.key_usable(session.key_id):
            self.end(token)
            raise SessionExpired(f"Access key {session.key_id} is no longer active: sign in again")
        return session

    def end(self, token: str | None) -> None:
        """Sign-out: the cookie's session is gone on the server, whatever the browser keeps."""
        if token:
            self.kept.delete_console_sessions(_digest(token))

    @staticmethod
    def csrf_ok(session: Session, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(session.csrf, sent or "")

    def new_link(self, key_id: str) -> tuple[str, float]:
        """A one-time sign-in token for ``key_id`` and when it stops working."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + self.link_ttl
        self.kept.put_console_link(_digest(token), key_id, expires, now)
        return token, expires

    def redeem(self, token: str) -> str:
        """The key a link signs in as; the link is spent whether or not it still works."""
        found = self.kept.take_console_link(_digest(token))
        if found is None or found["expires_at"] <= self.clock():
            raise SessionExpired("This sign-in link was used already or has expired")
        return found["key_id"]
