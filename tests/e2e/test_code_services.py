"""Code services: a branch served over HTTP by dulwich is fetched, configured by its
apprunner.yaml (or the API), built with a managed runtime and served through Caddy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from typer.testing import CliRunner

from slipway.cli import app
from testkit.gitserver import GitServer
from testkit.harness import code_source, live_containers, operations, wait_for, wait_status

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {"build_timeout": 30, "service_quota": 20}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_files(name: str, prefix: str = "") -> dict[str, str]:
    root = EXAMPLES / name
    return {
        prefix + str(p.relative_to(root)): p.read_text()
        for p in root.rglob("*")
        if p.is_file() and "node_modules" not in p.parts
    }


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


def deployment_log(agent, service: str, op_id: str) -> str:
    result = CliRunner().invoke(app, ["logs", service, "--deployment", op_id], env=agent.env)
    assert result.exit_code == 0, result.output
    return result.output


def test_python_repository_configuration(agent, git):
    sha = git.create_repo("python-hello", example_files("python-hello"))
    client = agent.client()
    created = client.create_service(
        ServiceName="py-repo", SourceConfiguration=code_source(git.url("python-hello"))
    )
    arn = created["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING", timeout=300)
    assert agent.get("py-repo").text.strip() == "Hello from python-hello"
    assert agent.get("py-repo", "/env/MESSAGE").text.strip() == "set in apprunner.yaml"
    assert agent.get("py-repo", "/env/APP_PORT").text.strip() == "8080"
    assert agent.get("py-repo", "/env/PORT").text.strip() == "8080"
    assert agent.get("py-repo", "/uptime").status_code == 200  # the dependency is installed

    log = deployment_log(agent, "py-repo", created["OperationId"])
    assert f"[AppRunner] Commit {sha[:7]} by Slipway Test" in log
    assert "[Build]" in log
    assert "pip install -r requirements.txt" in log
    images = docker.from_env().images.list(name="slipway/py-repo")
    assert [t for i in images for t in i.tags] == [f"slipway/py-repo:{sha[:7]}"]


def test_api_configuration_and_monorepo(agent, git):
    git.create_repo(
        "mono",
        {
            **example_files("python-hello", "services/api/"),
            "services/api/apprunner.yaml": None,
            "README.md": "a monorepo",
        },
    )
    client = agent.client()
    source = code_source(git.url("mono"), SourceDirectory="services/api")
    source["CodeRepository"]["CodeConfiguration"] = {
        "ConfigurationSource": "API",
        "CodeConfigurationValues": {
            "Runtime": "PYTHON_311",
            "BuildCommand": "pip install -r requirements.txt",
            "StartCommand": "python3 app.py",
            "Port": "8000",
            "RuntimeEnvironmentVariables": {"MESSAGE": "from the API"},
        },
    }
    arn = client.create_service(ServiceName="py-api", SourceConfiguration=source)["Service"][
        "ServiceArn"
    ]
    wait_status(client, arn, "RUNNING", timeout=300)
    assert agent.get("py-api").text.strip() == "Hello from python-hello"
    assert agent.get("py-api", "/env/MESSAGE").text.strip() == "from the API"
    assert agent.get("py-api", "/env/PORT").text.strip() == "8000"
    described = client.describe_service(ServiceArn=arn)["Service"]["SourceConfiguration"]
    assert described["CodeRepository"]["SourceDirectory"] == "services/api"


def test_node_app(agent, git):
    git.create_repo("node-hello", example_files("node-hello"))
    client = agent.client()
    arn = client.create_service(
        ServiceName="node-app", SourceConfiguration=code_source(git.url("node-hello"))
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING", timeout=300)
    assert agent.get("node-app").text.strip() == "Hello from node-hello"
    assert agent.get("node-app", "/env/MESSAGE").text.strip() == "set in apprunner.yaml"


BOMB = "version: 1.0\nruntime: python3\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a]\n"
GOOD_YAML = (EXAMPLES / "python-hello" / "apprunner.yaml").read_text()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"apprunner.yaml": GOOD_YAML.replace("  command:", "  comand:")}, ["line", "comand"]),
        ({"apprunner.yaml": None}, ["apprunner.yaml", "not found"]),
        ({"apprunner.yaml": BOMB}, ["apprunner.yaml", "line 3"]),
        ({"apprunner.yaml": "# " + "x" * (10 * 1024 * 1024)}, ["apprunner.yaml", "limit"]),
        (
            {"apprunner.yaml": GOOD_YAML.replace("pip install -r requirements.txt", "exit 1")},
            ["exit 1"],
        ),
        (
            {"apprunner.yaml": GOOD_YAML.replace("pip install -r requirements.txt", "sleep 600")},
            ["timed out", "30"],
        ),
        (
            {
                "apprunner.yaml": GOOD_YAML.replace(
                    "python app.py", "python -c 'raise SystemExit(3)'"
                )
            },
            ["health check", "exit code 3"],
        ),
    ],
    ids=[
        "unknown-key",
        "missing",
        "yaml-bomb",
        "10mb",
        "build-exit-1",
        "build-forever",
        "start-exits",
    ],
)
def test_bad_revisions_fail_and_old_keeps_serving(agent, git, change, words):
    name = f"bad{abs(hash(str(change))) % 10_000}"
    git.create_repo(name, example_files("python-hello"))
    client = agent.client()
    created = client.create_service(
        ServiceName=name, SourceConfiguration=code_source(git.url(name))
    )
    arn, service_id = created["Service"]["ServiceArn"], created["Service"]["ServiceId"]
    wait_status(client, arn, "RUNNING", timeout=300)
    before = {c.id for c in live_containers(service_id)}

    git.commit(name, change, message="a bad change")
    op_id = client.start_deployment(ServiceArn=arn)["OperationId"]
    wait_for(lambda: operations(client, arn)[0]["Status"] == "FAILED", 120, "deployment to fail")
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING"
    assert agent.get(name).text.strip() == "Hello from python-hello"
    log = deployment_log(agent, name, op_id)
    for word in words:
        assert word in log, log
    assert {c.id for c in live_containers(service_id)} == before
    assert list((agent.root / "data" / "builds").iterdir()) == []
    # A build step's container left behind stays; one of a build running elsewhere on
    # the host (another test process) is removed within moments.
    wait_for(lambda: not stray_build_containers(), 30, "no stray build step container")
    client.delete_service(ServiceArn=arn)


def stray_build_containers() -> list:
    exited = docker.from_env().containers.list(
        all=True, filters={"status": "exited"}, ignore_removed=True
    )
    return [c for c in exited if c.attrs["Config"].get("Image", "").startswith("sha256:")]


def test_missing_branch_and_unreachable_repo_roll_back(agent, git):
    git.create_repo("branchy", example_files("python-hello"))
    client = agent.client()
    arn = client.create_service(
        ServiceName="branchy", SourceConfiguration=code_source(git.url("branchy"))
    )["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING", timeout=300)
    for source, word in (
        (code_source(git.url("branchy"), branch="nope"), "nope"),
        (code_source("http://127.0.0.1:1/gone.git"), "127.0.0.1:1"),
    ):
        client.update_service(ServiceArn=arn, SourceConfiguration=source)
        wait_status(client, arn, "RUNNING", timeout=120)
        op = client.list_operations(ServiceArn=arn)["OperationSummaryList"][0]
        assert (op["Type"], op["Status"]) == ("UPDATE_SERVICE", "ROLLBACK_SUCCEEDED")
        log = deployment_log(agent, "branchy", op["Id"])
        assert word in log
        assert agent.get("branchy").text.strip() == "Hello from python-hello"
    described = client.describe_service(ServiceArn=arn)["Service"]["SourceConfiguration"]
    assert described["CodeRepository"]["SourceCodeVersion"]["Value"] == "main"


def test_source_directory_escaping_is_refused(agent, git):
    client = agent.client()
    before = client.list_services()["ServiceSummaryList"]
    with pytest.raises(client.exceptions.InvalidRequestException, match="SourceDirectory"):
        client.create_service(
            ServiceName="escape",
            SourceConfiguration=code_source(git.url("python-hello"), SourceDirectory="../etc"),
        )
    assert client.list_services()["ServiceSummaryList"] == before
