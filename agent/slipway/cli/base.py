"""What every command shares: the API client, failing, printing, and the common options."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..client import Client
from ..config import load_settings
from ..errors import SlipwayError

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="settings file (default /etc/slipway/slipway.yaml)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def _client(config: Path | None = None) -> Client:
    return Client.from_settings(load_settings(config))


def _fail(exc: SlipwayError) -> None:
    typer.echo(f"error: {exc.code}: {exc.message}", err=True)
    raise typer.Exit(1)


def _run(fn: Any) -> Any:
    try:
        return fn()
    except SlipwayError as exc:
        _fail(exc)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, sort_keys=True))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    typer.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        typer.echo("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


def _when(value: Any) -> str:
    if not value:
        return ""
    stamp = value.timestamp() if hasattr(value, "timestamp") else float(value)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))
