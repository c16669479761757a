"""Commands on services: create, list, describe, pause, resume, delete and roll out."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import SlipwayError
from ..idle import TAG_IDLE_TIMEOUT
from ..workers import WORKER_TAG
from .base import ConfigOpt, JsonOpt, _client, _fail, _print_json, _run, _table, _when
from .follow import wait_for

WaitOpt = Annotated[
    bool, typer.Option("--wait", help="follow the operation to its end; exit 1 if it fails")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="with --wait: every log line")]

services_app = typer.Typer(help="Create and manage services.", no_args_is_help=True)


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
    status = service["Status"]
    if service.get("IdleSince") is not None:
        status += f" (idle since {_when(service['IdleSince'])}: the next request wakes it)"
    rows = [
        ("Name", service["ServiceName"]),
        ("Status", status),
        ("URL", f"http://{service.get('ServiceUrl', '')}"),
        *origin,
        ("Arn", service["ServiceArn"]),
        ("Running", service.get("RunningRevision") or ""),
        ("Newest", service.get("NewestRevision") or ""),
        ("Created", _when(service.get("CreatedAt"))),
        ("Updated", _when(service.get("UpdatedAt"))),
    ]
    if len(service.get("Traffic") or []) > 1:  # a split (``slipway traffic``)
        rows.append(
            (
                "Traffic",
                ", ".join(f"{t['Revision'][:19]} {t['Percent']}%" for t in service["Traffic"]),
            )
        )
    rows += [(f"Tag {t['Tag']}", t["Url"]) for t in service.get("RevisionTags") or []]
    for label, value in rows:
        typer.echo(f"{label + ':':<9}{value}")


def _source(
    image: str | None,
    repo: str | None,
    branch: str,
    source_dir: str | None,
    runtime: str | None,
    build_command: str | None,
    port: int | None,
    env: dict[str, str],
    start_command: str | None,
    public: bool,
    manual: bool,
) -> dict[str, Any]:
    """SourceConfiguration from flags: an image, or a branch configured by its
    apprunner.yaml or, with --runtime, by the flags. No port: a worker's."""
    if bool(image) == bool(repo):
        _fail(SlipwayError("give exactly one of --image and --repo"))
    values: dict[str, Any] = {"Port": str(port)} if port is not None else {}
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
    port: Annotated[
        int | None, typer.Option(help="port the app listens on [default: 8080]")
    ] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE, repeatable")] = None,
    start_command: Annotated[str | None, typer.Option(help="command that starts the app")] = None,
    public: Annotated[bool, typer.Option("--public", help="anonymous pulls (ECR_PUBLIC)")] = False,
    manual: Annotated[bool, typer.Option("--manual", help="deploy only when asked")] = False,
    scale_to_zero: Annotated[
        str | None,
        typer.Option(help="stop its instances after this long without requests (90s, 10m, 1h)"),
    ] = None,
    worker: Annotated[
        bool, typer.Option("--worker", help="no HTTP port, no route: a background worker")
    ] = False,
    single: Annotated[
        bool, typer.Option("--single", help="with --worker: one instance, stopped before a new")
    ] = False,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Create a service from an image or a git branch; it deploys at once."""
    tags = _worker_tags(worker, single, port)
    if scale_to_zero:
        tags.append({"Key": TAG_IDLE_TIMEOUT, "Value": scale_to_zero})
    source = _source(
        image,
        repo,
        branch,
        source_dir,
        runtime,
        build_command,
        port if port is not None or worker else 8080,
        _parse_env(env or []),
        start_command,
        public,
        manual,
    )
    client = _client(config)
    result = _run(
        lambda: client.call(
            "CreateService",
            ServiceName=name,
            SourceConfiguration=source,
            **({"Tags": tags} if tags else {}),
        )
    )
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"Creating {name}: operation {result['OperationId']}")
        if worker:
            typer.echo("Worker: no HTTP port, no URL")
        elif not wait:
            typer.echo(f"URL: http://{result['Service']['ServiceUrl']}")
    if wait:
        wait_for(client, name, result["Service"]["ServiceArn"], result["OperationId"], verbose)


def _worker_tags(worker: bool, single: bool, port: int | None) -> list[dict[str, str]]:
    """CreateService's tag for --worker (``workers.py``), or none."""
    if not worker:
        if single:
            _fail(SlipwayError("--single applies to a worker: give --worker too"))
        return []
    if port is not None:
        _fail(SlipwayError("--worker: a worker service has no HTTP port; leave out --port"))
    return [{"Key": WORKER_TAG, "Value": "single" if single else "true"}]


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
        idle = client.signed("GET", "/slipway/v1/idle", params={"Service": name})
        split = client.signed("GET", "/slipway/v1/traffic", params={"ServiceArn": arn})
        return {
            **service,
            "RunningRevision": revs["RunningRevision"],
            "NewestRevision": revs["NewestRevision"],
            "IdleTimeout": idle["IdleTimeout"],
            "IdleSince": idle["IdleSince"],
            "Traffic": split["Traffic"],
            "RevisionTags": split["RevisionTags"],
        }

    _show_service(_run(fetch), as_json)


def _service_action(operation: str, verb: str, doc: str | None = None) -> Any:
    """A command that calls ``operation`` on the service NAME and prints its operation id."""

    def command(
        name: str,
        wait: WaitOpt = False,
        verbose: VerboseOpt = False,
        as_json: JsonOpt = False,
        config: ConfigOpt = None,
    ) -> None:
        client = _client(config)
        arn = _run(lambda: client.service_arn(name))
        result = _run(lambda: client.call(operation, ServiceArn=arn))
        if as_json:
            _print_json(result)
        else:
            typer.echo(f"{verb} {name}: operation {result['OperationId']}")
        if wait:
            shown = operation not in ("DeleteService", "PauseService")
            wait_for(client, name, arn, result["OperationId"], verbose, show_url=shown)

    command.__doc__ = doc or f"{verb} a service."
    return command


services_app.command("pause")(_service_action("PauseService", "Pausing"))
services_app.command("resume")(_service_action("ResumeService", "Resuming"))
services_app.command("delete")(_service_action("DeleteService", "Deleting"))
deploy = _service_action(
    "StartDeployment", "Deploying", "Deploy the newest revision of a service now."
)


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


def rollback(
    name: str,
    to: Annotated[
        str | None, typer.Option("--to", help="revision (or its prefix); default: the previous")
    ] = None,
    wait: WaitOpt = False,
    verbose: VerboseOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Deploy an earlier revision again from its kept image, without a rebuild."""
    client = _client(config)
    body: dict[str, Any] = {"Revision": to} if to else {}
    arn = _run(lambda: client.service_arn(name))
    result = _run(
        lambda: client.signed("POST", "/slipway/v1/rollback", {"ServiceArn": arn, **body})
    )
    typer.echo(f"Rolling back {name}: operation {result['OperationId']}")
    if wait:
        wait_for(client, name, arn, result["OperationId"], verbose)
