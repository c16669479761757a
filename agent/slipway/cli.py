"""The `slipway` command: parses, calls the API like any client, prints.

Only `serve` runs the agent itself; every other command talks to a running
agent over its signed API.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from . import keys
from .client import Client, user_credentials_file
from .config import load_settings
from .errors import SlipwayError

app = typer.Typer(
    help="slipway: a self-hosted, wire-compatible AWS App Runner.", no_args_is_help=True
)
services_app = typer.Typer(help="Create and manage services.", no_args_is_help=True)
keys_app = typer.Typer(help="Access keys for the API.", no_args_is_help=True)
registries_app = typer.Typer(help="Credentials for image registries.", no_args_is_help=True)
app.add_typer(services_app, name="services")
app.add_typer(keys_app, name="keys")
app.add_typer(registries_app, name="registries")
connections_app = typer.Typer(
    help="Credentials for source providers (GitHub).", no_args_is_help=True
)
app.add_typer(connections_app, name="connections")

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


@app.command()
def serve(
    config: ConfigOpt = None,
    listen_host: Annotated[str | None, typer.Option(help="API address")] = None,
    listen_port: Annotated[int | None, typer.Option(help="API port (default 8780)")] = None,
    http_port: Annotated[int | None, typer.Option(help="port services answer on")] = None,
    base_domain: Annotated[str | None, typer.Option(help="services at <name>.<domain>")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="state directory")] = None,
) -> None:
    """Run the agent: API, operations and their jobs."""
    from .agent import Agent
    from .api.server import serve as serve_agent

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Caddy call is noise

    def start() -> None:
        settings = load_settings(
            config,
            listen_host=listen_host,
            listen_port=listen_port,
            http_port=http_port,
            base_domain=base_domain,
            data_dir=data_dir,
        )
        serve_agent(Agent(settings))

    _run(start)


@keys_app.command("create")
def keys_create(
    description: Annotated[str, typer.Option(help="what the key is for")] = "",
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Create an access key; the first one is also saved for this user's CLI."""
    client = _client(config)
    result = _run(lambda: client.signed("POST", "/slipway/v1/keys", {"Description": description}))
    target = user_credentials_file()
    if keys.read_credentials(target) is None:
        keys.write_credentials(
            target, result["AccessKeyId"], result["SecretAccessKey"], client.region
        )
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"AccessKeyId:     {result['AccessKeyId']}")
        typer.echo(f"SecretAccessKey: {result['SecretAccessKey']}")


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


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(SlipwayError(f"--env {pair!r}: expected KEY=VALUE"))
        env[key] = value
    return env


def _show_service(service: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(service)
        return
    source = service.get("SourceConfiguration", {})
    image = source.get("ImageRepository")
    code = source.get("CodeRepository")
    if image:
        origin = [
            ("Image", image["ImageIdentifier"]),
            ("Port", image.get("ImageConfiguration", {}).get("Port", "")),
        ]
    else:
        origin = [
            ("Repo", code["RepositoryUrl"]),
            ("Branch", code["SourceCodeVersion"]["Value"]),
            ("Config", code.get("CodeConfiguration", {}).get("ConfigurationSource", "")),
        ]
    rows = [
        ("Name", service["ServiceName"]),
        ("Status", service["Status"]),
        ("URL", f"http://{service.get('ServiceUrl', '')}"),
        *origin,
        ("Arn", service["ServiceArn"]),
        ("Running", service.get("RunningRevision") or ""),
        ("Newest", service.get("NewestRevision") or ""),
        ("Created", _when(service.get("CreatedAt"))),
        ("Updated", _when(service.get("UpdatedAt"))),
    ]
    for label, value in rows:
        typer.echo(f"{label + ':':<9}{value}")


def _source(
    image: str | None,
    repo: str | None,
    branch: str,
    source_dir: str | None,
    runtime: str | None,
    build_command: str | None,
    port: int,
    env: dict[str, str],
    start_command: str | None,
    public: bool,
    manual: bool,
) -> dict[str, Any]:
    """SourceConfiguration from flags: an image, or a branch configured by its
    apprunner.yaml or, with --runtime, by the flags."""
    if bool(image) == bool(repo):
        _fail(SlipwayError("give exactly one of --image and --repo"))
    values: dict[str, Any] = {"Port": str(port)}
    if env:
        values["RuntimeEnvironmentVariables"] = env
    if start_command:
        values["StartCommand"] = start_command
    if image:
        return {
            "ImageRepository": {
                "ImageIdentifier": image,
                "ImageRepositoryType": "ECR_PUBLIC" if public else "ECR",
                "ImageConfiguration": values,
            },
            "AutoDeploymentsEnabled": not manual,
        }
    code: dict[str, Any] = {
        "RepositoryUrl": repo,
        "SourceCodeVersion": {"Type": "BRANCH", "Value": branch},
        "CodeConfiguration": {"ConfigurationSource": "REPOSITORY"},
    }
    if runtime:
        if build_command:
            values["BuildCommand"] = build_command
        code["CodeConfiguration"] = {
            "ConfigurationSource": "API",
            "CodeConfigurationValues": {"Runtime": runtime, **values},
        }
    if source_dir:
        code["SourceDirectory"] = source_dir
    return {"CodeRepository": code, "AutoDeploymentsEnabled": not manual}


@services_app.command("create")
def services_create(
    name: str,
    image: Annotated[str | None, typer.Option(help="host[:port]/repo:tag or @sha256:...")] = None,
    repo: Annotated[str | None, typer.Option(help="git URL to build from")] = None,
    branch: Annotated[str, typer.Option(help="branch to build")] = "main",
    source_dir: Annotated[str | None, typer.Option(help="build from this subdirectory")] = None,
    runtime: Annotated[
        str | None,
        typer.Option(help="configure the build here (e.g. PYTHON_3), not in apprunner.yaml"),
    ] = None,
    build_command: Annotated[str | None, typer.Option(help="with --runtime")] = None,
    port: Annotated[int, typer.Option(help="port the app listens on")] = 8080,
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE, repeatable")] = None,
    start_command: Annotated[str | None, typer.Option(help="command that starts the app")] = None,
    public: Annotated[bool, typer.Option("--public", help="anonymous pulls (ECR_PUBLIC)")] = False,
    manual: Annotated[bool, typer.Option("--manual", help="deploy only when asked")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Create a service from an image or a git branch; it deploys at once."""
    source = _source(
        image,
        repo,
        branch,
        source_dir,
        runtime,
        build_command,
        port,
        _parse_env(env or []),
        start_command,
        public,
        manual,
    )
    client = _client(config)
    result = _run(
        lambda: client.call("CreateService", ServiceName=name, SourceConfiguration=source)
    )
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"Creating {name}: operation {result['OperationId']}")
        typer.echo(f"URL: http://{result['Service']['ServiceUrl']}")


@services_app.command("list")
def services_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List services."""
    client = _client(config)
    summaries = _run(lambda: list(client.services()))
    if as_json:
        _print_json(summaries)
        return
    _table(
        [
            {
                "NAME": s["ServiceName"],
                "STATUS": s["Status"],
                "URL": f"http://{s['ServiceUrl']}",
                "UPDATED": _when(s.get("UpdatedAt")),
            }
            for s in summaries
        ],
        ["NAME", "STATUS", "URL", "UPDATED"],
    )


@services_app.command("describe")
def services_describe(name: str, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show one service, with its running and newest available revisions."""
    client = _client(config)

    def fetch() -> dict[str, Any]:
        arn = client.service_arn(name)
        service = client.call("DescribeService", ServiceArn=arn)["Service"]
        revs = client.signed("GET", "/slipway/v1/revisions", params={"ServiceArn": arn})
        return {
            **service,
            "RunningRevision": revs["RunningRevision"],
            "NewestRevision": revs["NewestRevision"],
        }

    _show_service(_run(fetch), as_json)


def _service_action(operation: str, verb: str, doc: str | None = None) -> Any:
    """A command that calls ``operation`` on the service NAME and prints its operation id."""

    def command(name: str, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
        client = _client(config)
        result = _run(lambda: client.call(operation, ServiceArn=client.service_arn(name)))
        if as_json:
            _print_json(result)
        else:
            typer.echo(f"{verb} {name}: operation {result['OperationId']}")

    command.__doc__ = doc or f"{verb} a service."
    return command


services_app.command("pause")(_service_action("PauseService", "Pausing"))
services_app.command("resume")(_service_action("ResumeService", "Resuming"))
services_app.command("delete")(_service_action("DeleteService", "Deleting"))
app.command("deploy")(
    _service_action("StartDeployment", "Deploying", "Deploy the newest revision of a service now.")
)


@app.command()
def operations(name: str, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """List a service's operations, newest first."""
    client = _client(config)

    def fetch() -> list[dict[str, Any]]:
        arn = client.service_arn(name)
        ops, token = [], None
        while True:
            page = client.call(
                "ListOperations", ServiceArn=arn, **({"NextToken": token} if token else {})
            )
            ops += page["OperationSummaryList"]
            token = page.get("NextToken")
            if not token:
                return ops

    ops = _run(fetch)
    if as_json:
        _print_json(ops)
        return
    _table(
        [
            {
                "ID": o["Id"],
                "TYPE": o["Type"],
                "STATUS": o["Status"],
                "STARTED": _when(o.get("StartedAt")),
                "ENDED": _when(o.get("EndedAt")),
            }
            for o in ops
        ],
        ["ID", "TYPE", "STATUS", "STARTED", "ENDED"],
    )


def _since(value: str | None) -> float:
    """``10m``, ``2h``, ``30s`` or ``1d`` ago, as epoch seconds."""
    if not value:
        return 0.0
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = value[:-1], value[-1:]
    if unit not in units or not number.isdigit():
        _fail(SlipwayError(f"--since {value!r}: expected a number and s, m, h or d, like 10m"))
    return time.time() - int(number) * units[unit]


@app.command()
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
        page = _run(lambda: client.signed("GET", "/slipway/v1/logs", params=dict(params)))
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


@app.command()
def revisions(name: str, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """The revisions a service can roll back to, newest first (* marks the live one)."""
    client = _client(config)
    data = _run(
        lambda: client.signed(
            "GET", "/slipway/v1/revisions", params={"ServiceArn": client.service_arn(name)}
        )
    )
    if as_json:
        _print_json(data)
        return
    _table(
        [
            {
                "REVISION": r["Revision"][:19],
                "LIVE": "*" if r["Revision"] == data["RunningRevision"] else "",
                "DEPLOYED": _when(r["DeployedAt"]),
                "OPERATION": r["OperationId"],
                "COMMIT": (r["Commit"].get("message") or "").splitlines()[0][:40]
                if r["Commit"].get("message")
                else "",
            }
            for r in data["Revisions"]
        ],
        ["REVISION", "LIVE", "DEPLOYED", "OPERATION", "COMMIT"],
    )


@app.command()
def rollback(
    name: str,
    to: Annotated[
        str | None, typer.Option("--to", help="revision (or its prefix); default: the previous")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Deploy an earlier revision again from its kept image, without a rebuild."""
    client = _client(config)
    body: dict[str, Any] = {"Revision": to} if to else {}
    result = _run(
        lambda: client.signed(
            "POST", "/slipway/v1/rollback", {"ServiceArn": client.service_arn(name), **body}
        )
    )
    typer.echo(f"Rolling back {name}: operation {result['OperationId']}")


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


notify_app = typer.Typer(help="Event notification targets.", no_args_is_help=True)
app.add_typer(notify_app, name="notify")


def _follow(fetch: Any, show: Any, follow: bool) -> None:
    """Print pages from a cursor endpoint; with ``follow``, keep polling for more."""
    after = None
    while True:
        page = _run(lambda cursor=after: fetch(cursor))
        for row in page["rows"]:
            show(row)
        after = page["next"]
        if not follow:
            return
        time.sleep(1)


@app.command()
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


@app.command()
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


@app.command()
def metrics(
    name: str,
    minutes: Annotated[int, typer.Option(help="how many minutes back (1-60)")] = 5,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """A service's requests, statuses, latency and resources, minute by minute."""
    client = _client(config)
    rows = _run(
        lambda: client.signed(
            "GET", "/slipway/v1/metrics", params={"Service": name, "Minutes": minutes}
        )
    )["Rows"]
    if as_json:
        _print_json(rows)
        return

    def num(value: Any, scale: float = 1, digits: int = 0) -> str:
        return "" if value is None else f"{value * scale:.{digits}f}"

    _table(
        [
            {
                "MINUTE": time.strftime("%H:%M", time.localtime(r["Minute"])),
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
