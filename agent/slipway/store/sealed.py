"""Values the store keeps sealed by the vault on their way in and opens on their way out,
so the database file never holds them in clear.

Callers seal what only they read (access key secrets, passwords, secrets' values) and
hand the store a token. The values here instead cross the store inside records that
many read: a service's ``RuntimeEnvironmentVariables`` travel in its spec, in the
operation that changes it and in each revision's release. So the store seals every
environment map it writes in those JSON columns, wherever it sits in them, and a
notification target's URL and a registry login's username, which are often
credentials themselves.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

# JSON columns that may carry environment maps, and the keys that hold one.
ENV_COLUMNS = frozenset({"spec", "params", "previous", "detail"})
ENV_KEYS = frozenset({"env", "RuntimeEnvironmentVariables"})
MARK = "$sealed"
# (table, column) of single values sealed by the store itself.
SEALED_TEXT = (("notify_targets", "url"), ("registry_credentials", "username"))
# Columns whose values their callers seal: one of them in a database means it needs its
# vault key (the root access key is made at first start, so every used database has one).
SEALED_COLUMNS = (
    ("access_keys", "secret"),
    ("secrets", "value"),
    ("connections", "credentials"),
    ("registry_credentials", "password"),
    ("notify_targets", "secret"),
)


class Sealer(Protocol):
    """The vault, as the store sees it."""

    def seal(self, value: str) -> str: ...

    def open(self, token: str) -> str: ...


def seal_maps(value: Any, sealer: Sealer) -> Any:
    """A copy of ``value`` with each environment map replaced by ``{MARK: token}``."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ENV_KEYS and isinstance(item, dict) and not _is_sealed(item):
                out[key] = {MARK: sealer.seal(json.dumps(item))} if item else item
            else:
                out[key] = seal_maps(item, sealer)
        return out
    if isinstance(value, list):
        return [seal_maps(item, sealer) for item in value]
    return value


def open_maps(value: Any, sealer: Sealer) -> Any:
    """``value`` with each sealed environment map opened again."""
    if isinstance(value, dict):
        return {
            key: json.loads(sealer.open(item[MARK]))
            if key in ENV_KEYS and _is_sealed(item)
            else open_maps(item, sealer)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [open_maps(item, sealer) for item in value]
    return value


def _is_sealed(item: Any) -> bool:
    return isinstance(item, dict) and item.keys() == {MARK} and isinstance(item[MARK], str)
