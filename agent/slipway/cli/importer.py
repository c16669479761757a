"""``slipway import``: an App Runner account recreated here. Reads the account with the
user's AWS credentials, plans against what this host has, prints the plan (``--dry-run``
stops there) or carries it out and prints what came over, what did not, and why."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import SlipwayError
from ..importer.account import SourceAccount, read_account
from ..importer.apply import FAILED, Importer, Outcome
from ..importer.plan import CREATE, SKIP, Options, Plan, make_plan
from .base import ConfigOpt, _client, _fail, _run, _table


def import_account(
    profile: Annotated[str | None, typer.Option(help="AWS profile (default: boto3's)")] = None,
    region: Annotated[str | None, typer.Option(help="AWS region of the App Runner account")] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="the AWS endpoint to read (LocalStack, another slipway)")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan only")] = False,
    push_images: Annotated[
        bool, typer.Option("--push-images", help="copy ECR images to --registry")
    ] = False,
    registry: Annotated[
        str, typer.Option(help="host:port or host:port/prefix that --push-images copies to")
    ] = "",
    only: Annotated[
        list[str] | None, typer.Option("--only", help="import this service only (repeatable)")
    ] = None,
    wait_seconds: Annotated[
        float, typer.Option(help="how long a new service may take to reach RUNNING")
    ] = 900.0,
    config: ConfigOpt = None,
) -> None:
    """Recreate an App Runner account's services, configurations, custom domains and
    connections here; a second run changes nothing."""
    if push_images and not registry:
        _fail(SlipwayError("--push-images needs --registry HOST:PORT (or HOST:PORT/PREFIX)"))
    options = Options(frozenset(only or []), registry if push_images else "")
    target = _client(config)

    def prepare() -> tuple[SourceAccount, Plan]:
        source = SourceAccount(profile, region, endpoint_url)
        account = read_account(source.call)
        here = read_account(target.call, tags=False)
        here.secrets = {
            s["Name"]: s["Grants"] for s in target.signed("GET", "/slipway/v1/secrets")["Secrets"]
        }
        return source, make_plan(account, here, options)

    source, plan = _run(prepare)
    if dry_run or not plan.pending():
        _print_plan(plan)
        return
    importer = Importer(source, target, wait_seconds=wait_seconds, say=typer.echo)
    outcomes = _run(lambda: importer.apply(plan))
    _print_outcomes(outcomes)
    if any(o.result == FAILED for o in outcomes):
        raise typer.Exit(1)


def _print_plan(plan: Plan) -> None:
    skipped = sum(i.action == SKIP for i in plan.items)
    if not plan.pending() and not skipped:
        typer.echo(f"Nothing to do: {len(plan.items)} item(s) checked.")
    elif not plan.pending():
        typer.echo(f"Nothing to create: {skipped} item(s) skipped, as DETAIL says.")
    _table(
        [
            {"KIND": i.kind, "NAME": i.name, "ACTION": i.action, "DETAIL": i.detail}
            for i in plan.items
        ],
        ["KIND", "NAME", "ACTION", "DETAIL"],
    )
    _notes([i for i in plan.items if i.action == CREATE])


def _print_outcomes(outcomes: list[Outcome]) -> None:
    _table(
        [
            {"KIND": o.item.kind, "NAME": o.item.name, "RESULT": o.result, "REASON": o.reason}
            for o in outcomes
        ],
        ["KIND", "NAME", "RESULT", "REASON"],
    )
    _notes([o.item for o in outcomes if o.result == "created"])


def _notes(items: list) -> None:
    lost = [(i, note) for i in items for note in i.lost]
    if lost:
        typer.echo("\nNot carried over:")
        for item, note in lost:
            typer.echo(f"  {item.kind} {item.name}: {note}")
    todo = [(i, step) for i in items for step in i.todo]
    if todo:
        typer.echo("\nTo do:")
        for item, step in todo:
            typer.echo(f"  {item.kind} {item.name}: {step}")
