"""Every App Runner managed runtime, end to end: each runtime's example under
``examples/`` is served from a git repository over HTTP (dulwich), built by a real
agent from its own ``apprunner.yaml`` on the runtime's base image, and answers through
the router with the language version the runtime ships.

The builds are the heaviest of the suite, so all services are created at once (the
agent builds them side by side, ``build_concurrency`` at a time) and each test waits for
its own. Runtimes App Runner has but this host cannot build, and versions a runtime does
not ship, fail the deployment at once, naming the problem, before any build starts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from slipway.builds.runtimes import Runtime, load_runtimes
from testkit.gitserver import GitServer
from testkit.harness import code_source, operations, service_containers, wait_status

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {"build_timeout": 900, "service_quota": 30}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

#: runtime -> its example; the version the app reports is "<prefix><runtime version>".
EXAMPLE = {
    "nodejs12": ("nodejs12-hello", "v"),
    "nodejs14": ("nodejs14-hello", "v"),
    "nodejs16": ("nodejs16-hello", "v"),
    "nodejs18": ("node-hello", None),  # no /version: its engines and npm start are the point
    "nodejs22": ("nodejs22-hello", "v"),
    "python3": ("python-hello", None),
    "python311": ("python311-hello", ""),
    "go1": ("go1-hello", "go"),
    "ruby31": ("ruby31-hello", ""),
    "php81": ("php81-hello", ""),
    "corretto8": ("corretto8-hello", ""),
    "corretto11": ("corretto11-hello", ""),
}
SECRET = f"secret-{uuid.uuid4().hex}"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:runtimes-token-AbCdEf"


def example_files(name: str) -> dict[str, str]:
    root = EXAMPLES / name
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def with_secret(files: dict[str, str]) -> dict[str, str]:
    """The guide's own secret example (``name: my-secret``) added to run."""
    config = files["apprunner.yaml"]
    files["apprunner.yaml"] = config + (
        f'  secrets:\n    - name: my-secret\n      value-from: "{SECRET_ARN}"\n'
    )
    return files


@pytest.fixture(scope="module")
def runtimes() -> dict[str, Runtime]:
    return load_runtimes()


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


@pytest.fixture(scope="module")
def services(agent: Any, git: GitServer) -> dict[str, str]:
    """Every runtime's example created as a service at once: runtime -> service ARN."""
    agent.cli("secrets", "put", "runtimes-token", "--service", "rt-python311", stdin=SECRET)
    client = agent.client()
    arns = {}
    for runtime, (example, _) in EXAMPLE.items():
        files = example_files(example)
        if runtime == "python311":
            files = with_secret(files)
        git.create_repo(example, files)
        created = client.create_service(
            ServiceName=f"rt-{runtime}", SourceConfiguration=code_source(git.url(example))
        )
        arns[runtime] = created["Service"]["ServiceArn"]
    return arns


@pytest.mark.parametrize("runtime", list(EXAMPLE))
def test_each_runtime_builds_its_example_and_serves_it(
    runtime: str, agent: Any, services: dict[str, str], runtimes: dict[str, Runtime]
) -> None:
    example, prefix = EXAMPLE[runtime]
    wait_status(agent.client(), services[runtime], "RUNNING", timeout=1500)
    service = f"rt-{runtime}"
    assert agent.get(service).text.strip() == f"Hello from {example}"
    assert agent.get(service, "/env/MESSAGE").text.strip() == "set in apprunner.yaml"
    (version,) = runtimes[runtime].versions
    if prefix is not None:
        reported = agent.get(service, "/version").text.strip()
        if version.count(".") == 2:  # exact: the very version the runtime ships
            assert reported == prefix + version
        else:  # a line: its patch level follows Debian's updates
            assert reported.startswith(f"{prefix}{version}.")


def test_run_names_follow_app_runner(agent: Any, services: dict[str, str]) -> None:
    """python311-hello's ``my-setting`` env and the guide's ``name: my-secret`` reach the
    app's environment under those very names."""
    wait_status(agent.client(), services["python311"], "RUNNING", timeout=1500)
    assert agent.get("rt-python311", "/env/my-setting").text.strip() == "any name App Runner takes"
    assert agent.get("rt-python311", "/env/my-secret").text.strip() == SECRET


def test_a_port_and_its_extra_variable(agent: Any, services: dict[str, str]) -> None:
    """nodejs22-hello listens on run.network.port 8000, given in PORT and APP_PORT."""
    wait_status(agent.client(), services["nodejs22"], "RUNNING", timeout=1500)
    assert agent.get("rt-nodejs22", "/env/PORT").text.strip() == "8000"
    assert agent.get("rt-nodejs22", "/env/APP_PORT").text.strip() == "8000"


@pytest.mark.parametrize(
    ("name", "config", "words"),
    [
        (
            "dotnet6",
            "version: 1.0\nruntime: dotnet6\nrun:\n  command: dotnet app.dll\n",
            "runtime dotnet6 is an App Runner runtime this host cannot build",
        ),
        (
            "py39",
            "version: 1.0\nruntime: Python3\nrun:\n  runtime-version: 3.9\n"
            "  command: python3 app.py\n",
            "runtime-version 3.9: runtime python3 has no such version; on this host it is"
            " Python 3.11",
        ),
    ],
)
def test_what_this_host_cannot_build_fails_before_the_build(
    name: str, config: str, words: str, agent: Any, git: GitServer
) -> None:
    git.create_repo(f"bad-{name}", {"apprunner.yaml": config, "app.py": "print()\n"})
    client = agent.client()
    created = client.create_service(
        ServiceName=f"bad-{name}", SourceConfiguration=code_source(git.url(f"bad-{name}"))
    )["Service"]
    wait_status(client, created["ServiceArn"], "CREATE_FAILED", timeout=300)
    (create,) = operations(client, created["ServiceArn"])
    log = agent.cli("logs", f"bad-{name}", "--deployment", create["Id"]).stdout
    assert words in log, log
    assert "[Build]" not in log, log  # no build step ran
    assert service_containers(created["ServiceId"]) == []


def test_an_api_configuration_it_cannot_build_is_refused(agent: Any, git: GitServer) -> None:
    """CreateService with CodeConfigurationValues.Runtime DOTNET_6: InvalidRequestException
    naming the runtime and why, and no service stored."""
    git.create_repo("api-dotnet", {"app.cs": "class App {}\n"})
    source = code_source(git.url("api-dotnet"))
    source["CodeRepository"]["CodeConfiguration"] = {
        "ConfigurationSource": "API",
        "CodeConfigurationValues": {"Runtime": "DOTNET_6", "StartCommand": "dotnet app.dll"},
    }
    client = agent.client()
    with pytest.raises(ClientError) as caught:
        client.create_service(ServiceName="api-dotnet", SourceConfiguration=source)
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidRequestException"
    assert "Runtime: DOTNET_6: runtime dotnet6 is an App Runner runtime" in error["Message"]
    names = [s["ServiceName"] for s in client.list_services()["ServiceSummaryList"]]
    assert "api-dotnet" not in names
