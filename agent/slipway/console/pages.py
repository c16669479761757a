"""How console pages render: one Jinja2 environment with autoescaping always on (names,
tags, env values, log lines and commit messages are text, never markup), the headers
every page carries (a strict Content-Security-Policy: scripts and styles only from the
agent's own files), and the API's error messages put next to the field they name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

HERE = Path(__file__).parent
STATIC = HERE / "static"
PREFIX = "/console"

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
# Status colour classes: the App Runner statuses of services and operations.
TONES = {
    "RUNNING": "ok",
    "SUCCEEDED": "ok",
    "ROLLBACK_SUCCEEDED": "warn",
    "PAUSED": "idle",
    "DELETED": "idle",
    "PENDING": "busy",
    "IN_PROGRESS": "busy",
    "OPERATION_IN_PROGRESS": "busy",
    "ROLLBACK_IN_PROGRESS": "busy",
}
_AT = re.compile(r"at '([A-Za-z0-9_.\[\]]+)'")


def tone(status: str | None) -> str:
    """The colour class of a status: failures are 'bad', whatever their name."""
    if not status:
        return "idle"
    return TONES.get(status, "bad" if "FAIL" in status else "idle")


def iso(epoch: float | None) -> str:
    """An epoch time as ISO 8601 UTC for ``<time datetime>``; the browser shows it in
    the viewer's own time zone."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(float(epoch), UTC).isoformat(timespec="seconds")


def _within(member: str, path: str) -> bool:
    """``member`` is ``path`` or inside it (``path.Member``, ``path[0]``)."""
    return member == path or (member.startswith(path) and member[len(path) : len(path) + 1] in ".[")


def field_errors(message: str, fields: Mapping[str, str]) -> dict[str, list[str]]:
    """The API's message split per form field: each part that names a member (``at
    'ServiceName'`` from the model check, or a leading ``ServiceName:`` from a rule)
    goes next to the field whose member path it starts with; the rest under ``""``."""
    parts = message.split(": ", 1)[1].split("; ") if " detected: " in message else [message]
    out: dict[str, list[str]] = {}
    for part in parts:
        named = _AT.search(part)
        member = named.group(1) if named else part.split(":", 1)[0].strip()
        target = next((f for path, f in fields.items() if _within(member, path)), "")
        out.setdefault(target, []).append(part)
    return out


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tone"] = tone
    env.filters["iso"] = iso
    env.globals["prefix"] = PREFIX
    return env


def render(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    return env.get_template(name).render(**context)
