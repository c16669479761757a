"""`slipway backup` and `slipway restore`: the documented exception to "the CLI only
calls the API". They work on this host's files directly, as root (``backup.py`` says
why), and import what they need only when called, so the other commands never load
the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import load_settings, settings_file
from .base import ConfigOpt, _run

FileArg = Annotated[Path, typer.Argument(help="the backup file (a .tar.gz)")]


def backup(file: FileArg, config: ConfigOpt = None) -> None:
    """Copy this host's state (database, vault key, settings, credentials) into FILE,
    mode 0600, while the agent runs. Container images are not included."""
    from .. import backup as backups

    def run() -> None:
        manifest = backups.create(load_settings(config), settings_file(config), file)
        typer.echo(
            f"backup written to {file} (schema {manifest['schema_version']}:"
            f" {', '.join(manifest['files'])}); {manifest['not_included']}"
        )

    _run(run)


def restore(file: FileArg, config: ConfigOpt = None) -> None:
    """Bring this host's state back to FILE; stop the agent first, start it after.
    A file that is not a slipway backup, or is from a newer version, changes nothing."""
    from .. import backup as backups

    def run() -> None:
        settings = load_settings(config)
        manifest = backups.restore(settings, settings_file(config), file)
        typer.echo(
            f"restored {file} (made {manifest['created_at']} on {manifest['host']}) into"
            f" {settings.data_dir} and {settings.vault_key.parent}; start the agent:"
            " each service runs its live revision again"
        )

    _run(run)
