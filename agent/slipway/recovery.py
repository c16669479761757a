"""``slipway keys recover-root``: a new root key when the credentials file is lost.

The one command that opens the store instead of calling the API, because it is for
when no key that could call the API is left. It is as safe as the files it reads:
only root (or the user that owns the database, for an agent run without root) can
open the database and the vault key, and whoever can read those owns every secret on
the host anyway. It works with the agent running (SQLite's WAL lets both write) and
writes the new key where the agent wrote the first one.
"""

from __future__ import annotations

import os

from . import keys
from .access import Access
from .config import Settings
from .errors import AuthError
from .store import Store, sealed_sample
from .vault import open_vault


def recover_root(settings: Settings) -> str:
    """Make a new ``root`` key, write it to the agent's credentials file; its id."""
    db = settings.db_path
    if not db.exists():
        raise AuthError(f"no slipway database at {db}; is data_dir right?")
    if os.geteuid() not in (0, db.stat().st_uid):
        raise AuthError(f"recover-root runs as root (or as the owner of {db}) on the host")
    # The agent's own way to the vault: refused, naming the path, when the key is missing
    # or is not the database's (a new key would seal a root secret nothing else opens).
    vault = open_vault(settings.vault_key, settings.data_dir / "vault.key", sealed_sample(db))
    access = Access(
        Store(db, vault),
        vault,
        settings.access_limits,
        region=settings.region,
        account=settings.account_id,
    )
    key_id, secret = access.recover_root()
    keys.write_credentials(settings.credentials_file, key_id, secret, settings.region)
    return key_id
