"""The store's plumbing: the one shared connection, transactions, migration, row codecs.

The tables' queries build on it (``resources.py``, ``observe.py``); it is apart from them
so that each family of tables reads on its own, over the same few helpers.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from ..errors import SlipwayError
from . import schema
from .schema import JSON_COLUMNS
from .sealed import ENV_COLUMNS, SEALED_COLUMNS, Sealer, open_maps, seal_maps


class StoreError(SlipwayError):
    pass


class StoreBase:
    """One connection shared by the agent's threads behind a lock, which is plenty for a
    control plane and keeps every multi-row change atomic."""

    def __init__(self, path: Path, vault: Sealer) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Born 0600: SQLite gives the WAL and shared-memory files the database's mode.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db = sqlite_utils.Database(conn)
        self.vault = vault
        self._lock = threading.RLock()
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self._migrate()

    # -- plumbing ---------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        if "meta" not in self.db.table_names():
            return 0
        return int(self.get_meta("schema_version") or 0)

    def _migrate(self) -> None:
        # ``schema.MIGRATIONS`` looked up now, so a test can start from an older schema.
        newest = len(schema.MIGRATIONS)
        if self.schema_version > newest:
            raise StoreError(
                f"the database's schema is version {self.schema_version}, newer than this"
                f" slipway's ({newest}): run the slipway that wrote it, or restore a backup"
                " made by this version"
            )
        with self.transaction():
            for version, step in enumerate(schema.MIGRATIONS, start=1):
                if self.schema_version < version:
                    if isinstance(step, schema.WithVault):
                        step.step(self.db, self.vault)
                    else:
                        step(self.db)
                    self.set_meta("schema_version", str(version))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside happen or none do; nested blocks become savepoints. SQLite's
        refusals (locked, disk I/O) leave as StoreError, like a failed query's."""
        try:
            with self._lock, self.db.atomic():
                yield
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc

    def changes(self) -> tuple[int, int]:
        """A mark that moves with every write: the rows this connection changed, and
        SQLite's ``data_version`` for other connections' commits. What a periodic job
        read is current while the mark stands (the idle reconcile pass reads nothing)."""
        with self._lock:
            try:
                version = self.db.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error as exc:
                raise StoreError(f"store query failed: {exc}") from exc
            return self.db.conn.total_changes, int(version)

    def _rows(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        names, rows = self._raw_rows(sql, params)
        return [self.decode_row(dict(zip(names, row, strict=True))) for row in rows]

    def _raw_rows(self, sql: str, params: tuple | dict = ()) -> tuple[list[str], list[tuple]]:
        """Column names and the rows as SQLite gives them, JSON columns still text."""
        with self._lock:
            try:
                cursor = self.db.execute(sql, params)
            except sqlite3.Error as exc:
                raise StoreError(f"store query failed: {exc}") from exc
            return [d[0] for d in cursor.description], cursor.fetchall()

    def _one(self, sql: str, params: tuple | dict = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        with self.transaction():
            self.db[table].insert(self.encode_row(row))

    def _update(self, table: str, pk: Any, fields: dict[str, Any]) -> None:
        with self.transaction():
            self.db[table].update(pk, self.encode_row(fields))

    def get_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    def encode_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """JSON columns as text, their environment maps sealed (``sealed.py``)."""
        return {
            k: json.dumps(seal_maps(v, self.vault) if k in ENV_COLUMNS else v)
            if k in JSON_COLUMNS and v is not None
            else v
            for k, v in row.items()
        }

    def decode_row(self, row: dict[str, Any]) -> dict[str, Any]:
        for key in JSON_COLUMNS & row.keys():
            if isinstance(row[key], str):
                value = json.loads(row[key])
                row[key] = open_maps(value, self.vault) if key in ENV_COLUMNS else value
        return row

    def _seal_text(self, value: str | None) -> str | None:
        return None if value is None else self.vault.seal(value)

    def _open_text(self, row: dict[str, Any] | None, column: str) -> dict[str, Any] | None:
        """``row`` with ``column``, sealed by the store, opened."""
        if row is not None and row.get(column) is not None:
            row[column] = self.vault.open(row[column])
        return row


def sealed_sample(path: Path) -> str | None:
    """One sealed value of the database at ``path``, or None when it holds none (or does
    not exist): whether opening it needs a vault key, and a value to try the key on."""
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, column in SEALED_COLUMNS:
            if table in tables:
                row = conn.execute(
                    f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"
                    f" AND {column} != '' LIMIT 1"
                ).fetchone()
                if row:
                    return row[0]
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot read the database: {exc}") from exc
    finally:
        conn.close()
    return None
