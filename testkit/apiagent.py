"""An agent for the HTTP app alone (``create_app``) in unit tests: the real store, access
keys and audit trail; every other part absent, so a test that reaches one fails loudly."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

from slipway.access import Access
from slipway.config import Settings
from slipway.observe.audit import AuditTrail
from slipway.store import Store

# The parts create_app wires routes to, besides the ones given.
ABSENT = (
    "services",
    "domains",
    "connections",
    "tracker",
    "previews",
    "metrics",
    "metrics_history",
    "notifier",
    "secrets",
    "splits",
    "nodes",
    "events",
    "idler",
)


def app_agent(
    tmp_path: Path, store: Store, access: Access, audit: AuditTrail, **settings: Any
) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        settings=Settings(data_dir=tmp_path, config_dir=tmp_path, **settings),
        store=store,
        access=access,
        audit=audit,
        **dict.fromkeys(ABSENT),
    )
