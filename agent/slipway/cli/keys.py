"""Commands on access keys and the principals they belong to: each one a signed call of
``/slipway/v1/keys`` or ``/slipway/v1/principals``, but ``recover-root``, which works on
the host's store (``recovery.py`` says why)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .. import keys
from ..client import user_credentials_file
from ..config import load_settings
from ..errors import SlipwayError
from .base import ConfigOpt, JsonOpt, _client, _fail, _print_json, _run, _table, _when

keys_app = typer.Typer(help="Access keys for the API.", no_args_is_help=True)
principals_app = typer.Typer(
    help="Principals: who keys belong to, and their access policies.", no_args_is_help=True
)


def _print_secret(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(result)
        return
    typer.echo(f"AccessKeyId:     {result['AccessKeyId']}")
    typer.echo(f"SecretAccessKey: {result['SecretAccessKey']}")
    typer.echo(f"Principal:       {result['Principal']}")
    if result.get("ExpiresAt"):
        typer.echo(f"Expires:         {_when(result['ExpiresAt'])}")


@keys_app.command("create")
def keys_create(
    principal: Annotated[str, typer.Option(help="the principal the key acts as")] = "root",
    description: Annotated[str, typer.Option(help="what the key is for")] = "",
    expires: Annotated[
        str | None, typer.Option(help="lifetime: 90m, 12h or 30d (default: none)")
    ] = None,
    save: Annotated[
        bool, typer.Option("--save", help="also make it this user's CLI key (credentials file)")
    ] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Create an access key for a principal; its secret is shown once."""
    client = _client(config)
    body = {"Principal": principal, "Description": description}
    if expires:
        body["Expires"] = expires
    result = _run(lambda: client.signed("POST", "/slipway/v1/keys", body))
    if save:
        keys.write_credentials(
            user_credentials_file(), result["AccessKeyId"], result["SecretAccessKey"], client.region
        )
    _print_secret(result, as_json)


@keys_app.command("list")
def keys_list(
    principal: Annotated[str | None, typer.Option(help="only this principal's keys")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """List keys: principal, status, expiry and last use (never secrets)."""
    client = _client(config)
    params = {"Principal": principal} if principal else None
    rows = _run(lambda: client.signed("GET", "/slipway/v1/keys", params=params))["Keys"]
    if as_json:
        _print_json(rows)
        return
    _table(
        [
            {
                "ACCESS KEY": r["AccessKeyId"],
                "PRINCIPAL": r["Principal"],
                "STATUS": r["Status"],
                "EXPIRES": _when(r["ExpiresAt"]),
                "LAST USED": _when(r["LastUsedAt"]),
                "DESCRIPTION": r["Description"],
            }
            for r in rows
        ],
        ["ACCESS KEY", "PRINCIPAL", "STATUS", "EXPIRES", "LAST USED", "DESCRIPTION"],
    )


def _set_status(key_id: str, status: str, config: Path | None) -> None:
    client = _client(config)
    _run(lambda: client.signed("PUT", f"/slipway/v1/keys/{key_id}/status", {"Status": status}))
    typer.echo(f"{key_id}: {status}")


@keys_app.command("disable")
def keys_disable(key_id: str, config: ConfigOpt = None) -> None:
    """Refuse the key from its next request on (enable brings it back)."""
    _set_status(key_id, "Inactive", config)


@keys_app.command("enable")
def keys_enable(key_id: str, config: ConfigOpt = None) -> None:
    """Let a disabled key sign again."""
    _set_status(key_id, "Active", config)


@keys_app.command("delete")
def keys_delete(key_id: str, config: ConfigOpt = None) -> None:
    """Delete a key for good."""
    client = _client(config)
    _run(lambda: client.signed("DELETE", f"/slipway/v1/keys/{key_id}"))
    typer.echo(f"Deleted {key_id}")


@keys_app.command("rotate")
def keys_rotate(key_id: str, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """A new key for the same principal; the old one is disabled. When the old one is
    this user's CLI key, the credentials file gets the new one."""
    client = _client(config)
    result = _run(lambda: client.signed("POST", f"/slipway/v1/keys/{key_id}/rotate"))
    target = user_credentials_file()
    saved = keys.read_credentials(target)
    if saved is not None and saved[0] == key_id:
        keys.write_credentials(
            target, result["AccessKeyId"], result["SecretAccessKey"], client.region
        )
    _print_secret(result, as_json)


@keys_app.command("recover-root")
def keys_recover_root(config: ConfigOpt = None) -> None:
    """On the host, as root: a new root key in the agent's credentials file, for when
    every key file is lost. Opens the store directly, not the API."""
    from ..recovery import recover_root  # the store is loaded by this command only

    settings = load_settings(config)
    key_id = _run(lambda: recover_root(settings))
    typer.echo(f"New root key {key_id} written to {settings.credentials_file}")


@principals_app.command("create")
def principals_create(name: str, config: ConfigOpt = None) -> None:
    """Create a principal (with no policy: it may do nothing yet)."""
    client = _client(config)
    _run(lambda: client.signed("POST", "/slipway/v1/principals", {"Principal": name}))
    typer.echo(f"Created principal {name}")


@principals_app.command("list")
def principals_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List principals, their policies and keys."""
    client = _client(config)
    rows = _run(lambda: client.signed("GET", "/slipway/v1/principals"))["Principals"]
    if as_json:
        _print_json(rows)
        return
    _table(
        [
            {
                "PRINCIPAL": r["Principal"],
                "POLICIES": ",".join(r["Policies"]),
                "KEYS": ",".join(r["AccessKeyIds"]),
            }
            for r in rows
        ],
        ["PRINCIPAL", "POLICIES", "KEYS"],
    )


@principals_app.command("attach-policy")
def principals_attach(
    principal: str,
    policy: Annotated[
        str | None,
        typer.Argument(help="a ready-made policy: administrator, deployer, read-only"),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="an IAM-style policy document (JSON)")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="the name of a --file policy (default: the file's)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Attach a ready-made policy by name, or a policy document with --file."""
    body: dict[str, Any] = {}
    if file is not None:  # sent as text: the agent checks it, JSON syntax included
        try:
            body["PolicyDocument"] = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            _fail(SlipwayError(f"{file}: cannot read it: {exc}"))
        policy = name or policy or file.stem
    if not policy:
        _fail(SlipwayError("name a ready-made policy, or pass --file policy.json"))
    client = _client(config)
    _run(
        lambda: client.signed("PUT", f"/slipway/v1/principals/{principal}/policies/{policy}", body)
    )
    typer.echo(f"Attached {policy} to {principal}")


@principals_app.command("detach-policy")
def principals_detach(principal: str, policy: str, config: ConfigOpt = None) -> None:
    """Detach a policy from a principal."""
    client = _client(config)
    _run(lambda: client.signed("DELETE", f"/slipway/v1/principals/{principal}/policies/{policy}"))
    typer.echo(f"Detached {policy} from {principal}")


def console_link(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Print a one-time link that signs a browser into the web console as this CLI's key
    (it works once, for console_link_ttl seconds)."""
    client = _client(config)
    result = _run(lambda: client.signed("POST", "/slipway/v1/console/links", {}))
    url = f"{client.endpoint}{result['Path']}"
    if as_json:
        _print_json({"Url": url, "ExpiresAt": result["ExpiresAt"]})
        return
    typer.echo(url)
    typer.echo(f"It works once, until {_when(result['ExpiresAt'])}.", err=True)
