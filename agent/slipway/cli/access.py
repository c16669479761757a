"""Commands on credentials: image registry logins and source connections (access keys and
principals: ``cli/keys.py``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..client import Client
from ..errors import SlipwayError
from .base import ConfigOpt, JsonOpt, _client, _fail, _print_json, _run, _table

registries_app = typer.Typer(help="Credentials for image registries.", no_args_is_help=True)
connections_app = typer.Typer(
    help="Credentials for source providers (GitHub).", no_args_is_help=True
)


@registries_app.command("login")
def registries_login(
    host: Annotated[str, typer.Argument(help="registry host[:port]")],
    username: Annotated[str, typer.Option("--username", "-u")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Store credentials the agent uses for ECR-type images on HOST."""
    if not password_stdin:
        _fail(SlipwayError("pass the password on stdin with --password-stdin"))
    password = sys.stdin.read().rstrip("\r\n")
    client = _client(config)
    _run(
        lambda: client.signed(
            "PUT", f"/slipway/v1/registries/{host}", {"Username": username, "Password": password}
        )
    )
    typer.echo(f"Login stored for {host}")


@connections_app.command("create")
def connections_create(name: str, config: ConfigOpt = None) -> None:
    """Create a GitHub connection; complete it with `slipway connections authorize`."""
    client = _client(config)
    result = _run(
        lambda: client.call("CreateConnection", ConnectionName=name, ProviderType="GITHUB")
    )
    typer.echo(
        f"{name}: {result['Connection']['Status']} ({result['Connection']['ConnectionArn']})"
    )


@connections_app.command("list")
def connections_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List connections."""
    client = _client(config)
    rows = _run(lambda: client.call("ListConnections")["ConnectionSummaryList"])
    if as_json:
        _print_json(rows)
        return
    _table(
        [
            {"NAME": r["ConnectionName"], "STATUS": r["Status"], "ARN": r["ConnectionArn"]}
            for r in rows
        ],
        ["NAME", "STATUS", "ARN"],
    )


def _connection_arn(client: Client, name: str) -> str:
    rows = client.call("ListConnections", ConnectionName=name)["ConnectionSummaryList"]
    if not rows:
        raise SlipwayError(f"no connection named {name}")
    return rows[0]["ConnectionArn"]


@connections_app.command("delete")
def connections_delete(name: str, config: ConfigOpt = None) -> None:
    """Delete a connection no service uses."""
    client = _client(config)
    _run(lambda: client.call("DeleteConnection", ConnectionArn=_connection_arn(client, name)))
    typer.echo(f"Deleted connection {name}")


@connections_app.command("authorize")
def connections_authorize(
    name: str,
    app_id: Annotated[int | None, typer.Option(help="a GitHub App's id (else: a token)")] = None,
    private_key: Annotated[
        Path | None, typer.Option(help="the GitHub App's private key file (PEM)")
    ] = None,
    installation_id: Annotated[int | None, typer.Option(help="the App's installation")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Complete a connection's handshake: a token on stdin, or a GitHub App."""
    body: dict[str, Any] = {}
    if app_id is not None:
        if private_key is None:
            _fail(SlipwayError("--app-id needs --private-key FILE"))
        body = {"AppId": app_id, "PrivateKey": private_key.read_text()}
        if installation_id is not None:
            body["InstallationId"] = installation_id
    else:
        token = sys.stdin.read().strip()
        if not token:
            _fail(SlipwayError("pass a GitHub token on stdin, or --app-id and --private-key"))
        body = {"Token": token}
    client = _client(config)
    result = _run(lambda: client.signed("POST", f"/slipway/v1/connections/{name}/authorize", body))
    if as_json:
        _print_json(result)
        return
    typer.echo(f"{name}: {result['Connection']['Status']} as {result['Account']}")
    typer.echo(f"GitHub webhook: {result['WebhookUrl']}  secret: {result['WebhookSecret']}")
