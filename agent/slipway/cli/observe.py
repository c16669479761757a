"""Commands that watch what happened: logs, events, audit, metrics and notification targets."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import SlipwayError
from .base import ConfigOpt, JsonOpt, _client, _fail, _print_json, _run, _table, _when
from .follow import reconnecting

notify_app = typer.Typer(help="Event notification targets.", no_args_is_help=True)


def _since(value: str | None) -> float:
    """``10m``, ``2h``, ``30s`` or ``1d`` ago, as epoch seconds."""
    if not value:
        return 0.0
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = value[:-1], value[-1:]
    if unit not in units or not number.isdigit():
        _fail(SlipwayError(f"--since {value!r}: expected a number and s, m, h or d, like 10m"))
    return time.time() - int(number) * units[unit]


def logs(
    name: str,
    deployment: Annotated[
        str | None, typer.Option("--deployment", help="one deployment's log (operation id)")
    ] = None,
    instance: Annotated[
        str | None, typer.Option("--instance", help="one instance's app output (container id)")
    ] = None,
    app_output: Annotated[
        bool, typer.Option("--app", help="the app's output of every instance")
    ] = False,
    since: Annotated[str | None, typer.Option(help="only lines newer than this, e.g. 10m")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")] = False,
    config: ConfigOpt = None,
) -> None:
    """Print a service's logs, merged by time: its events and deployments, or with
    --app its instances' output."""
    client = _client(config)
    arn = _run(lambda: client.service_arn(name))
    params: dict[str, Any] = {"ServiceArn": arn, "Offset": 0}
    single = bool(deployment or instance)
    if deployment:
        params["Stream"] = f"deployment/{deployment}"
    elif instance:
        params["Instance"] = instance
    else:
        params["Since"] = _since(since)
        if app_output:
            params["Group"] = "application"
            if not since:
                params.update(Limit=1000, Newest="true")
    while True:
        page = (reconnecting if follow else _run)(
            lambda: client.signed("GET", "/slipway/v1/logs", params=dict(params))
        )
        for event in page["Events"]:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["Timestamp"]))
            prefix = "" if single else f"{event['Stream']:<22} "
            typer.echo(f"{stamp} {prefix}{event['Message']}")
        if not follow:
            return
        if single:
            params["Offset"] = page["NextOffset"]
        elif page["Events"]:
            params["Since"] = page["Events"][-1]["Timestamp"] + 1e-6
            params.pop("Newest", None)
        time.sleep(0.5)


def _follow(fetch: Any, show: Any, follow: bool) -> None:
    """Print pages from a cursor endpoint; with ``follow``, keep polling for more."""
    after = None
    while True:
        page = (reconnecting if follow else _run)(lambda cursor=after: fetch(cursor))
        for row in page["rows"]:
            show(row)
        after = page["next"]
        if not follow:
            return
        time.sleep(1)


def events(
    name: Annotated[str | None, typer.Argument(help="one service (default: all)")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Service and operation status changes, as EventBridge events."""
    client = _client(config)
    arn = _run(lambda: client.service_arn(name)) if name else None

    def fetch(after: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {"Limit": 500}
        if arn:
            params["ServiceArn"] = arn
        if after is not None:
            params["AfterId"] = after
        page = client.signed("GET", "/slipway/v1/events", params=params)
        return {"rows": page["Events"], "next": page["NextAfterId"]}

    def show(row: dict[str, Any]) -> None:
        event = row["Event"]
        if as_json:
            typer.echo(json.dumps(event, sort_keys=True))
            return
        detail = event["detail"]
        if "operationStatus" in detail:
            what = detail["operationStatus"]
        elif "currentInstanceCount" in detail:
            what = detail["message"]
        else:
            what = f"{detail['previousServiceStatus']} -> {detail['currentServiceStatus']}"
        typer.echo(f"{event['time']} {detail['serviceName']:<20} {what}")

    _follow(fetch, show, follow)


def audit(
    since: Annotated[str | None, typer.Option(help="only calls newer than this, e.g. 1h")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Every API call and webhook: who, from where, what, and the outcome."""
    client = _client(config)
    params: dict[str, Any] = {"Limit": 500}
    if since:
        params["Since"] = _since(since)
    page = _run(lambda: client.signed("GET", "/slipway/v1/audit", params=params))
    rows = page["Events"]
    if as_json:
        _print_json(rows)
        return
    _table(
        [
            {
                "TIME": _when(r.get("Time")),
                "KEY": r.get("AccessKeyId") or "-",
                "SOURCE": r.get("SourceIp") or "",
                "OPERATION": r.get("Operation"),
                "OUTCOME": r.get("Outcome"),
            }
            for r in rows
        ],
        ["TIME", "KEY", "SOURCE", "OPERATION", "OUTCOME"],
    )


@notify_app.command("add")
def notify_add(
    url: str,
    pattern: Annotated[Path, typer.Option(help="an EventBridge event pattern (JSON file)")],
    slack: Annotated[bool, typer.Option("--slack", help="Slack incoming-webhook body")] = False,
    config: ConfigOpt = None,
) -> None:
    """Send the events that match PATTERN to URL, signed with a secret printed once."""
    try:
        pattern_obj = json.loads(pattern.read_text())
    except OSError as exc:
        _fail(SlipwayError(f"--pattern {pattern}: {exc.strerror}"))
    except ValueError as exc:
        _fail(SlipwayError(f"--pattern {pattern}: not valid JSON: {exc}"))
    client = _client(config)
    body = {"Url": url, "Pattern": pattern_obj, "Format": "slack" if slack else "json"}
    target = _run(lambda: client.signed("POST", "/slipway/v1/notify", body))["Target"]
    typer.echo(f"Target {target['Id']}: {target['Url']}")
    if target.get("Secret"):
        typer.echo(f"Signing secret (X-Slipway-Signature, HMAC-SHA256): {target['Secret']}")


@notify_app.command("list")
def notify_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Notification targets."""
    client = _client(config)
    targets = _run(lambda: client.signed("GET", "/slipway/v1/notify"))["Targets"]
    if as_json:
        _print_json(targets)
        return
    _table(
        [
            {"ID": t["Id"], "URL": t["Url"], "FORMAT": t["Format"], "FROM": t["Source"]}
            for t in targets
        ],
        ["ID", "URL", "FORMAT", "FROM"],
    )


@notify_app.command("remove")
def notify_remove(target_id: str, config: ConfigOpt = None) -> None:
    """Stop sending to a target."""
    client = _client(config)
    _run(lambda: client.signed("DELETE", f"/slipway/v1/notify/{target_id}"))
    typer.echo(f"Removed target {target_id}")


def metrics(
    name: str,
    minutes: Annotated[
        int,
        typer.Option(
            help="how many minutes back: a row per minute up to 60, per 5 minutes up to"
            " 1440, per hour beyond (as far as metrics_history_days)"
        ),
    ] = 5,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """A service's requests, statuses, latency and resources, minute by minute (longer
    windows in 5-minute or hourly rows)."""
    client = _client(config)
    rows = _run(
        lambda: client.signed(
            "GET", "/slipway/v1/metrics", params={"Service": name, "Minutes": minutes}
        )
    )["Rows"]
    if as_json:
        _print_json(rows)
        return

    stamp = "%H:%M" if minutes <= 1440 else "%a %H:%M"

    def num(value: Any, scale: float = 1, digits: int = 0) -> str:
        return "" if value is None else f"{value * scale:.{digits}f}"

    _table(
        [
            {
                "MINUTE": time.strftime(stamp, time.localtime(r["Minute"])),
                "REQ": r["Requests"],
                "2XX": r["2xxStatusResponses"],
                "4XX": r["4xxStatusResponses"],
                "5XX": r["5xxStatusResponses"],
                "P50MS": num(r["RequestLatencyP50"], 1000, 1),
                "P99MS": num(r["RequestLatencyP99"], 1000, 1),
                "INST": num(r["ActiveInstances"]),
                "CPU%": num(r["CPUUtilization"], digits=1),
                "MEM%": num(r["MemoryUtilization"], digits=1),
            }
            for r in rows
        ],
        ["MINUTE", "REQ", "2XX", "4XX", "5XX", "P50MS", "P99MS", "INST", "CPU%", "MEM%"],
    )
