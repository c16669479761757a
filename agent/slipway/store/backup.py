"""The database as a file: a consistent copy of a live one, and the checks a copy must
pass before it replaces one. Apart from ``base.py`` because these never open the
database as the agent's store (no migration, no vault): a backup copies another
process's live database, a restore looks at a file before it trusts it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import schema
from .base import StoreError


def copy_database(source: Path, dest: Path) -> int:
    """Copy ``source`` to ``dest`` (mode 0600) with SQLite's online backup API: one
    consistent snapshot, even while the agent writes (WAL readers do not block it).
    Returns the copy's schema version."""
    if not source.exists():
        raise StoreError(f"no database at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dest.touch(mode=0o600, exist_ok=False)
    out = sqlite3.connect(str(dest))
    try:
        src.backup(out)
        out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no WAL beside it
    except sqlite3.Error as exc:
        raise StoreError(f"copying the database {source} failed: {exc}") from exc
    finally:
        out.close()
        src.close()
    return database_version(dest)


def database_version(path: Path) -> int:
    """The schema version of the slipway database at ``path``, after SQLite's integrity
    check; StoreError when it is not one, or is damaged."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"{path} is not a slipway database: {exc}") from exc
    if check != "ok":
        raise StoreError(f"{path}: the database is damaged: {check}")
    if row is None or not str(row[0]).isdigit():
        raise StoreError(f"{path} is not a slipway database: it has no schema version")
    return int(row[0])


def newest_version() -> int:
    """The schema version this code writes."""
    return len(schema.MIGRATIONS)
