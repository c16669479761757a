"""``slipway secrets``: values that only the services they are granted to can read. A
value goes in on stdin (never an argument, which ``ps`` and shell history would show)
and never comes back out."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .base import ConfigOpt, JsonOpt, _client, _print_json, _run, _table, _when

secrets_app = typer.Typer(
    help="Secrets bound to services (RuntimeEnvironmentSecrets, run.secrets).",
    no_args_is_help=True,
)


def _grants(grants: list[str]) -> str:
    return ", ".join(grants) or "(none)"


@secrets_app.command("put")
def secrets_put(
    name: str,
    service: Annotated[
        list[str] | None, typer.Option("--service", "-s", help="a service that may read it")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Create or replace NAME with the value on stdin, granted to each --service.

    One trailing newline is dropped; grants given before stay."""
    value = sys.stdin.read()
    value = value.removesuffix("\n").removesuffix("\r")
    client = _client(config)
    body = {"Name": name, "SecretString": value, "Services": service or []}
    result = _run(lambda: client.signed("PUT", "/slipway/v1/secrets", body))
    secret = result["Secret"]
    verb = "Created" if result["Created"] else "Replaced"
    typer.echo(f"{verb} secret {secret['Name']}; granted to: {_grants(secret['Grants'])}")


@secrets_app.command("list")
def secrets_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Secrets, with the services each is granted to (never their values)."""
    client = _client(config)
    rows = _run(lambda: client.signed("GET", "/slipway/v1/secrets"))["Secrets"]
    if as_json:
        _print_json(rows)
        return
    _table(
        [
            {
                "NAME": r["Name"],
                "GRANTED TO": _grants(r["Grants"]),
                "UPDATED": _when(r["UpdatedAt"]),
            }
            for r in rows
        ],
        ["NAME", "GRANTED TO", "UPDATED"],
    )


@secrets_app.command("grant")
def secrets_grant(name: str, service: str, config: ConfigOpt = None) -> None:
    """Let SERVICE read NAME from its next deployment on (it need not exist yet)."""
    client = _client(config)
    body = {"Name": name, "Service": service}
    secret = _run(lambda: client.signed("PUT", "/slipway/v1/secrets/grants", body))["Secret"]
    typer.echo(f"Secret {secret['Name']} granted to: {_grants(secret['Grants'])}")


@secrets_app.command("revoke")
def secrets_revoke(name: str, service: str, config: ConfigOpt = None) -> None:
    """Stop SERVICE reading NAME from its next deployment on.

    Instances already running keep the value they started with."""
    client = _client(config)
    body = {"Name": name, "Service": service}
    secret = _run(lambda: client.signed("DELETE", "/slipway/v1/secrets/grants", body))["Secret"]
    typer.echo(f"Secret {secret['Name']} granted to: {_grants(secret['Grants'])}")


@secrets_app.command("delete")
def secrets_delete(name: str, config: ConfigOpt = None) -> None:
    """Delete NAME and its grants."""
    client = _client(config)
    _run(lambda: client.signed("DELETE", "/slipway/v1/secrets", {"Name": name}))
    typer.echo(f"Deleted secret {name}")
