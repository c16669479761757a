"""GitHub App credentials, and the cache of the installation tokens minted from them.

Separate from ``github.py`` because these are held by the connections (and parsed by
the API) without any call to GitHub; ``TokenCache`` needs only something that mints an
installation token, which ``GitHub.installation_token`` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class AppCredentials:
    """A GitHub App: its id, its PEM private key and, once known, its installation."""

    app_id: int
    private_key: str
    installation_id: int | None = None

    def __repr__(self) -> str:  # the key never reaches a log line or a traceback
        return f"AppCredentials(app_id={self.app_id}, installation_id={self.installation_id})"


class TokenMinter(Protocol):
    """What mints installation tokens: ``github.GitHub``."""

    def installation_token(self, app: AppCredentials) -> tuple[str, float]: ...


class TokenCache:
    """Installation tokens per key (a connection), reused until ``refresh_margin`` before expiry.

    GitHub caps installation tokens at an hour and limits how fast they are minted, so
    one token serves every call until shortly before it lapses. New credentials under
    the same key (a rotated key, another installation) replace the cached token.
    """

    def __init__(
        self,
        github: TokenMinter,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.github = github
        self.refresh_margin = refresh_margin
        self.clock = clock
        self._tokens: dict[str, tuple[AppCredentials, str, float]] = {}
        self._lock = threading.Lock()

    def token(self, key: str, app: AppCredentials) -> str:
        """A token for ``app`` that stays valid for at least ``refresh_margin`` seconds."""
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None:
                cached_app, token, expires_at = cached
                if cached_app == app and self.clock() < expires_at - self.refresh_margin:
                    return token
            token, expires_at = self.github.installation_token(app)
            self._tokens[key] = (app, token, expires_at)
            return token

    def forget(self, key: str) -> None:
        """Drop a key's token, e.g. when its connection is deleted or GitHub refused it."""
        with self._lock:
            self._tokens.pop(key, None)
