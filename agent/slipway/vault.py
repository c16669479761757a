"""Secrets at rest: values the agent must read back (SigV4 secrets, registry logins,
secrets, environment variables, notification URLs) are kept encrypted in the store with
a key that lives apart from it: ``<config_dir>/vault.key`` (``/etc/slipway/vault.key``
for root), mode 0600, so a copy of ``data_dir`` alone opens nothing."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import shutil
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from .errors import SlipwayError

log = logging.getLogger("slipway.vault")


class Vault:
    def __init__(self, key_file: Path) -> None:
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
        os.chmod(key_file, 0o600)
        self.key_file = key_file
        self._raw = key_file.read_bytes().strip()
        self._fernet = Fernet(self._raw)

    def derive(self, purpose: str) -> bytes:
        """A key for one purpose (signing paging tokens...), from the vault key: kept
        across restarts with it, and no use for opening sealed values."""
        return hmac.new(self._raw, f"slipway {purpose}".encode(), hashlib.sha256).digest()

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SlipwayError("a stored secret cannot be decrypted with this host's key") from exc


def open_vault(key_file: Path, legacy_key_file: Path, sealed_sample: str | None) -> Vault:
    """The vault of a database, its key at ``key_file``. A key left at ``legacy_key_file``
    (beside the database, where versions before it lived) is moved there first. Refused,
    naming the path, when the database holds sealed values (``sealed_sample`` is one)
    and the key is missing or does not open them: a new key would make them unreadable."""
    if legacy_key_file.exists():
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.move(legacy_key_file, key_file)
            log.warning("vault key moved from %s to %s", legacy_key_file, key_file)
        elif legacy_key_file.read_bytes().strip() == key_file.read_bytes().strip():
            legacy_key_file.unlink()
            log.warning("vault key: removed its old copy %s (as %s)", legacy_key_file, key_file)
        else:
            raise SlipwayError(
                f"two different vault keys: {key_file} and {legacy_key_file}; keep the one"
                " that opens the database (move it to the first path) and remove the other"
            )
    if sealed_sample is not None and not key_file.exists():
        raise SlipwayError(
            f"the database holds sealed values but the vault key {key_file} is missing;"
            " put the key back (or restore a backup: slipway restore FILE)"
        )
    vault = Vault(key_file)
    if sealed_sample is not None:
        try:
            vault.open(sealed_sample)
        except SlipwayError as exc:
            raise SlipwayError(
                f"the vault key {key_file} does not open the database's sealed values;"
                " put back the key this database was written with"
            ) from exc
    return vault
