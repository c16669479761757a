"""Traffic between a service's revisions: ``slipway traffic`` splits its requests,
``slipway revisions tag|untag`` gives a revision a URL of its own. Each command answers
once the change is routed, and prints the split as it stands."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import SlipwayError
from . import services
from .base import ConfigOpt, JsonOpt, _client, _fail, _print_json, _run, _table

TRAFFIC = "/slipway/v1/traffic"
TAGS = "/slipway/v1/revision-tags"


def show_traffic(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(data)
        return
    _table(
        [{"REVISION": t["Revision"][:19], "PERCENT": t["Percent"]} for t in data["Traffic"]],
        ["REVISION", "PERCENT"],
    )
    if data["RevisionTags"]:
        _table(
            [
                {"TAG": t["Tag"], "REVISION": t["Revision"][:19], "URL": t["Url"]}
                for t in data["RevisionTags"]
            ],
            ["TAG", "REVISION", "URL"],
        )
    if data.get("RolloutPolicy"):
        typer.echo(f"Rollout policy: {data['RolloutPolicy']}")


def traffic(
    name: str,
    to: Annotated[
        list[str] | None,
        typer.Option("--to", help="REVISION=PERCENT (a prefix of the revision is enough)"),
    ] = None,
    to_latest: Annotated[
        bool, typer.Option("--to-latest", help="the live revision takes every request")
    ] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Split a service's requests between its revisions (shown when no option is given)."""
    client = _client(config)
    if to and to_latest:
        _fail(SlipwayError("give --to or --to-latest, not both"))

    def call() -> dict[str, Any]:
        arn = client.service_arn(name)
        if not to and not to_latest:
            return client.signed("GET", TRAFFIC, params={"ServiceArn": arn})
        body: dict[str, Any] = {"ToLatest": True} if to_latest else {"To": list(to or [])}
        return client.signed("PUT", TRAFFIC, {"ServiceArn": arn, **body})

    show_traffic(_run(call), as_json)


def revisions(
    name: str,
    args: Annotated[
        list[str] | None, typer.Argument(help="tag NAME REVISION TAG | untag NAME TAG")
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The revisions a service can roll back to (slipway revisions NAME); give one a URL
    of its own, <tag>--<service>.<base_domain> (slipway revisions tag NAME REVISION TAG),
    or take it back (slipway revisions untag NAME TAG)."""
    args = list(args or [])
    if name not in ("tag", "untag") or not args:
        if args:
            _fail(SlipwayError(f"unexpected arguments {' '.join(args)}: see --help"))
        services.revisions(name, as_json, config)
        return
    wanted = 3 if name == "tag" else 2
    if len(args) != wanted:
        usage = "tag NAME REVISION TAG" if name == "tag" else "untag NAME TAG"
        _fail(SlipwayError(f"usage: slipway revisions {usage}"))
    client = _client(config)

    def call() -> dict[str, Any]:
        arn = client.service_arn(args[0])
        if name == "tag":
            return client.signed(
                "PUT", TAGS, {"ServiceArn": arn, "Revision": args[1], "Tag": args[2]}
            )
        return client.signed("DELETE", TAGS, {"ServiceArn": arn, "Tag": args[1]})

    show_traffic(_run(call), as_json)
