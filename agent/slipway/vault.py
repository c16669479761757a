"""Secrets at rest: values the agent must read back (SigV4 secrets, registry passwords)
are kept encrypted in the store with a key that lives beside it, mode 0600."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from .errors import SlipwayError


class Vault:
    def __init__(self, key_file: Path) -> None:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
        self._fernet = Fernet(key_file.read_bytes().strip())

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SlipwayError("a stored secret cannot be decrypted with this host's key") from exc
