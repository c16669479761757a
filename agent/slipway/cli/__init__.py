"""The `slipway` command: parses, calls the API like any client, prints.

Only `serve` runs the agent itself; `backup` and `restore` work on this host's
files (as root); every other command talks to a running agent over its signed
API. This module only assembles the commands, in the order `slipway --help` lists
them.
"""

from __future__ import annotations

import typer

from . import (
    access,
    importer,
    keys,
    nodes,
    observe,
    previews,
    secrets,
    serve,
    services,
    state,
    traffic,
)

app = typer.Typer(
    help="slipway: a self-hosted, wire-compatible AWS App Runner.", no_args_is_help=True
)
app.command()(serve.serve)
app.command("deploy")(services.deploy)
app.command()(services.operations)
app.command()(observe.logs)
app.command()(traffic.revisions)
app.command()(services.rollback)
app.command()(traffic.traffic)
app.command()(observe.events)
app.command()(observe.audit)
app.command()(observe.metrics)
app.command()(nodes.nodes)
app.command("console-link")(keys.console_link)
app.command()(state.backup)
app.command()(state.restore)
app.command("import")(importer.import_account)
app.add_typer(services.services_app, name="services")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(keys.principals_app, name="principals")
app.add_typer(access.registries_app, name="registries")
app.add_typer(access.connections_app, name="connections")
app.add_typer(secrets.secrets_app, name="secrets")
app.add_typer(previews.previews_app, name="previews")
app.add_typer(observe.notify_app, name="notify")
