"""Access key ids, and the credentials file clients read keys from (the CLI uses this
module; the keys themselves are kept by ``access.py``)."""

from __future__ import annotations

import configparser
import os
import secrets
import string
from pathlib import Path

PROFILE = "slipway"


def new_key_id() -> str:
    alphabet = string.ascii_uppercase + string.digits
    return "SLWY" + "".join(secrets.choice(alphabet) for _ in range(16))


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
