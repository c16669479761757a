"""Access keys that sign API requests, and the credentials file clients read them from."""

from __future__ import annotations

import configparser
import os
import secrets
import string
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads credentials files through this module, never the store
    from .store import Store
    from .vault import Vault

PROFILE = "slipway"


def _key_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "SLWY" + "".join(secrets.choice(alphabet) for _ in range(16))


def create_access_key(store: Store, vault: Vault, description: str = "") -> tuple[str, str]:
    key_id = _key_id()
    secret = secrets.token_urlsafe(30)[:40]
    store.insert_access_key(
        {
            "id": key_id,
            "secret": vault.seal(secret),
            "created_at": time.time(),
            "description": description,
        }
    )
    return key_id, secret


def lookup_secret(store: Store, vault: Vault, key_id: str) -> str | None:
    row = store.get_access_key(key_id)
    return vault.open(row["secret"]) if row else None


def write_credentials(path: Path, key_id: str, secret: str, region: str) -> None:
    """Write (or replace) the ``slipway`` profile in an AWS credentials file, mode 0600."""
    parser = configparser.ConfigParser()
    if path.exists():
        parser.read(path)
    parser[PROFILE] = {
        "aws_access_key_id": key_id,
        "aws_secret_access_key": secret,
        "region": region,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        parser.write(fh)
    os.chmod(path, 0o600)


def read_credentials(path: Path) -> tuple[str, str, str | None] | None:
    parser = configparser.ConfigParser()
    if not path.exists() or not parser.read(path) or PROFILE not in parser:
        return None
    section = parser[PROFILE]
    return section["aws_access_key_id"], section["aws_secret_access_key"], section.get("region")
