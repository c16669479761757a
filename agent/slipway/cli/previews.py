"""Commands on preview environments: enable, disable and list them.

Previews are switched by resource tags on the code service (``slipway:previews`` and
``slipway:preview-env:KEY``), so these commands only tag through the API; the agent's
``previews`` job does the rest, as it would for tags set with boto3 or Terraform.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import SlipwayError
from ..preview_rules import (
    TAG_PREVIEW_ENV,
    TAG_PREVIEW_OF,
    TAG_PREVIEW_PR,
    TAG_PREVIEWS,
    check_previewable,
    policy_text,
    preview_tag_keys,
)
from .base import ConfigOpt, JsonOpt, _client, _fail, _print_json, _run, _table, _when

previews_app = typer.Typer(
    help="Preview environments: a service per open pull request.", no_args_is_help=True
)


@previews_app.command("enable")
def enable(
    name: str,
    ttl: Annotated[
        str | None, typer.Option("--ttl", help="remove a preview unchanged this long (3d, 12h)")
    ] = None,
    max_previews: Annotated[
        int | None, typer.Option("--max", help="previews at once; the oldest go first")
    ] = None,
    allow_forks: Annotated[
        bool, typer.Option("--allow-forks", help="build pull requests from forks (no secrets)")
    ] = False,
    no_poll: Annotated[
        bool, typer.Option("--no-poll", help="only webhooks, no polling of open pull requests")
    ] = False,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="KEY=VALUE for previews only (repeat)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Give each open pull request of the code service NAME a preview NAME-pr-NUMBER."""
    policy = _run(lambda: policy_text(ttl, max_previews, allow_forks, not no_poll))
    tags = [{"Key": TAG_PREVIEWS, "Value": policy}]
    for pair in env or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(SlipwayError(f"--env {pair!r}: expected KEY=VALUE"))
        tags.append({"Key": TAG_PREVIEW_ENV + key, "Value": value})
    client = _client(config)

    def tag() -> None:
        arn = client.service_arn(name)
        source = client.call("DescribeService", ServiceArn=arn)["Service"]["SourceConfiguration"]
        check_previewable(name, source)
        client.call("TagResource", ResourceArn=arn, Tags=tags)

    _run(tag)
    typer.echo(f"Previews of {name}: {policy}")


@previews_app.command("disable")
def disable(name: str, config: ConfigOpt = None) -> None:
    """Stop making previews of NAME; the agent removes those it made."""
    client = _client(config)

    def untag() -> None:
        arn = client.service_arn(name)
        tags = client.call("ListTagsForResource", ResourceArn=arn)["Tags"]
        keys = preview_tag_keys(t["Key"] for t in tags)
        if not keys:
            raise SlipwayError(f"previews of {name} are not enabled")
        client.call("UntagResource", ResourceArn=arn, TagKeys=keys)

    _run(untag)
    typer.echo(f"Previews of {name} disabled; its previews are being removed")


@previews_app.command("list")
def list_previews(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Services with previews enabled, and their previews."""
    client = _client(config)

    def fetch() -> list[dict[str, Any]]:
        rows = []
        for summary in client.services():
            tags = {
                t["Key"]: t["Value"]
                for t in client.call("ListTagsForResource", ResourceArn=summary["ServiceArn"])[
                    "Tags"
                ]
            }
            if TAG_PREVIEWS in tags or TAG_PREVIEW_OF in tags:
                rows.append({**summary, "Tags": tags})
        return rows

    rows = _run(fetch)
    if as_json:
        _print_json(rows)
        return
    names = {r["ServiceArn"]: r["ServiceName"] for r in rows}
    _table(
        [
            {
                "SERVICE": r["ServiceName"],
                "PREVIEW OF": names.get(r["Tags"].get(TAG_PREVIEW_OF, ""), ""),
                "PR": r["Tags"].get(TAG_PREVIEW_PR, ""),
                "POLICY": r["Tags"].get(TAG_PREVIEWS, ""),
                "STATUS": r["Status"],
                "URL": f"http://{r['ServiceUrl']}" if TAG_PREVIEW_OF in r["Tags"] else "",
                "CREATED": _when(r.get("CreatedAt")),
            }
            for r in rows
        ],
        ["SERVICE", "PREVIEW OF", "PR", "POLICY", "STATUS", "URL", "CREATED"],
    )
