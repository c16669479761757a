"""``slipway import`` from a second agent standing in for the App Runner account (it
speaks the same API, reached with ``--endpoint-url`` and an AWS profile): what the user
sees is the plan, what came over, and the services answering here."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from testkit.gitserver import GitServer
from testkit.harness import (
    AgentProcess,
    code_source,
    image_source,
    running_agent,
    running_caddy,
    wait_for,
    wait_status,
    worker_network,
)

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The worker's slice of the instance network, split between the two agents.
HALVES = list(ipaddress.ip_network(worker_network()).subnets(prefixlen_diff=1))
BUILD_SECONDS = 600


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - conftest's name
    return {
        "instance_network": str(HALVES[0]),
        "dns_resolver": request.getfixturevalue("dns_server").address,
    }


@pytest.fixture(scope="module")
def account(
    tmp_path_factory: pytest.TempPathFactory, docker_client, dns_server
) -> Iterator[AgentProcess]:
    """The "App Runner account": an agent of its own, on a Caddy of its own."""
    with (
        running_caddy(tmp_path_factory.mktemp("account-caddy")) as caddy,
        running_agent(
            tmp_path_factory.mktemp("account"),
            caddy,
            instance_network=str(HALVES[1]),
            dns_resolver=dns_server.address,
        ) as process,
    ):
        yield process


@pytest.fixture(scope="module", autouse=True)
def images_made(docker_client) -> Iterator[None]:
    """The images this module's agents build or pull that no other test makes, removed."""
    yield
    for image in docker_client.images.list():
        for name in image.tags + image.attrs.get("RepoDigests", []):
            if name.startswith("slipway/code-c:") or "/imported/examples/hello" in name:
                with contextlib.suppress(docker.errors.APIError):  # by name: layers shared
                    docker_client.images.remove(name)


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


def aws_profile(tmp_path: Path, account: AgentProcess, secret: str | None = None) -> dict:
    """The environment of a user whose AWS profile ``account`` holds these keys."""
    key_id, real = account.credentials()
    creds = tmp_path / "aws-credentials"
    creds.write_text(
        f"[account]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret or real}\n"
    )
    config = tmp_path / "aws-config"
    config.write_text("")
    return {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": str(config)}


def slipway_import(agent: AgentProcess, account: AgentProcess, env: dict, *args: str):
    """The real CLI, run against ``agent`` as its operator runs it."""
    return subprocess.run(
        [
            sys.executable, "-m", "slipway", "import", "--profile", "account",
            "--region", "us-east-1", "--endpoint-url", account.endpoint, *args,
        ],
        env={**agent.env, **env},
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS + 120,
    )  # fmt: skip


def rows(output: str) -> dict[tuple[str, str], list[str]]:
    """The printed table's rows by (KIND, NAME): its other columns."""
    table = {}
    for line in output.split("\n\n")[0].splitlines()[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 3:
            table[cells[0], cells[1]] = cells[2:]
    return table


def example_files(name: str) -> dict[str, str]:
    root = EXAMPLES / name
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def populated(account: AgentProcess, git: GitServer, push_hello) -> dict[str, str]:
    """The account: three services (two images, one branch), two auto scaling
    configurations (one with two revisions), an observability configuration, a custom
    domain, a connection and tags. Returns the services' ARNs by name."""
    client = account.client()
    steady = client.create_auto_scaling_configuration(
        AutoScalingConfigurationName="steady", MaxConcurrency=50, MinSize=1, MaxSize=2
    )["AutoScalingConfiguration"]["AutoScalingConfigurationArn"]
    client.create_auto_scaling_configuration(
        AutoScalingConfigurationName="bursty", MaxConcurrency=10, MinSize=1, MaxSize=3
    )
    bursty2 = client.create_auto_scaling_configuration(
        AutoScalingConfigurationName="bursty", MaxConcurrency=20, MinSize=1, MaxSize=4
    )["AutoScalingConfiguration"]["AutoScalingConfigurationArn"]
    client.create_observability_configuration(
        ObservabilityConfigurationName="traces", TraceConfiguration={"Vendor": "AWSXRAY"}
    )
    client.create_connection(ConnectionName="github-main", ProviderType="GITHUB")
    health = {"Protocol": "HTTP", "Path": "/health", "Interval": 1}
    git.create_repo("python-hello", example_files("python-hello"))
    arns = {}
    greet = [{"GREETING": letter} for letter in "ab"]
    for name, source, asc in (
        ("web-a", image_source(push_hello(), RuntimeEnvironmentVariables=greet[0]), bursty2),
        ("web-b", image_source(push_hello(), RuntimeEnvironmentVariables=greet[1]), steady),
        ("code-c", code_source(git.url("python-hello")), None),
    ):
        arns[name] = client.create_service(
            ServiceName=name,
            SourceConfiguration=source,
            InstanceConfiguration={"Cpu": "256", "Memory": "512"},
            HealthCheckConfiguration=health,
            Tags=[{"Key": "team", "Value": name}],
            **({"AutoScalingConfigurationArn": asc} if asc else {}),
        )["Service"]["ServiceArn"]
    for arn in arns.values():
        wait_status(client, arn, "RUNNING", timeout=BUILD_SECONDS)
    client.associate_custom_domain(ServiceArn=arns["web-a"], DomainName="shop.example.test")
    return arns


def test_wrong_credentials_are_a_clear_error(agent, account, tmp_path):
    done = slipway_import(agent, account, aws_profile(tmp_path, account, "not-the-secret"))
    assert done.returncode == 1
    assert "refused the credentials of profile account" in done.stderr
    assert agent.client().list_services()["ServiceSummaryList"] == []


def test_import_recreates_the_account_and_a_second_run_has_nothing_to_do(
    agent, account, populated, tmp_path
):
    env = aws_profile(tmp_path, account)
    client = agent.client()

    dry = slipway_import(agent, account, env, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    plan = rows(dry.stdout)
    for kind, name in (("service", "web-a"), ("service", "code-c"), ("auto scaling", "bursty")):
        assert plan[kind, name][0] == "create", plan
    assert plan["custom domain", "shop.example.test"][0] == "create"
    assert "revision 1: MaxConcurrency 10, MinSize 1, MaxSize 3; revision 2:" in dry.stdout
    assert client.list_services()["ServiceSummaryList"] == []  # the dry run changed nothing
    assert not client.list_auto_scaling_configurations(AutoScalingConfigurationName="bursty")[
        "AutoScalingConfigurationSummaryList"
    ]

    done = slipway_import(agent, account, env)
    assert done.returncode == 0, done.stdout + done.stderr
    services = {s["ServiceName"]: s for s in client.list_services()["ServiceSummaryList"]}
    assert sorted(services) == ["code-c", "web-a", "web-b"]
    assert {s["Status"] for s in services.values()} == {"RUNNING"}
    wait_for(lambda: "GREETING=a" in agent.get("web-a").text, 30, "web-a to answer here")
    assert "GREETING=b" in agent.get("web-b").text
    assert agent.get("code-c").text.strip() == "Hello from python-hello"

    bursty = client.list_auto_scaling_configurations(AutoScalingConfigurationName="bursty")[
        "AutoScalingConfigurationSummaryList"
    ]
    assert sorted(r["AutoScalingConfigurationRevision"] for r in bursty) == [1, 2]
    web_a = client.describe_service(ServiceArn=services["web-a"]["ServiceArn"])["Service"]
    used = web_a["AutoScalingConfigurationSummary"]
    assert (used["AutoScalingConfigurationName"], used["AutoScalingConfigurationRevision"]) == (
        "bursty",
        2,
    )
    assert web_a["HealthCheckConfiguration"]["Path"] == "/health"
    assert web_a["InstanceConfiguration"] == {"Cpu": "256", "Memory": "512"}
    tags = client.list_tags_for_resource(ResourceArn=web_a["ServiceArn"])["Tags"]
    assert tags == [{"Key": "team", "Value": "web-a"}]
    domains = client.describe_custom_domains(ServiceArn=web_a["ServiceArn"])
    assert [d["DomainName"] for d in domains["CustomDomains"]] == ["shop.example.test"]
    assert f"DNS: shop.example.test CNAME {domains['DNSTarget']}" in done.stdout
    connections = client.list_connections()["ConnectionSummaryList"]
    assert [(c["ConnectionName"], c["Status"]) for c in connections] == [
        ("github-main", "PENDING_HANDSHAKE")
    ]
    assert "github-main: authorize it: slipway connections authorize github-main" in done.stdout
    traces = client.list_observability_configurations(ObservabilityConfigurationName="traces")
    assert len(traces["ObservabilityConfigurationSummaryList"]) == 1

    again = slipway_import(agent, account, env)
    assert again.returncode == 0, again.stderr
    assert "Nothing to do" in again.stdout
    assert {r[0] for r in rows(again.stdout.split("\n", 1)[1]).values()} == {"nothing to do"}


def test_a_changed_service_is_skipped_with_what_differs(agent, account, populated, tmp_path):
    env = aws_profile(tmp_path, account)
    if not agent.client().list_services()["ServiceSummaryList"]:
        assert slipway_import(agent, account, env, "--only", "web-b").returncode == 0
    source = account.client()
    source.update_service(
        ServiceArn=populated["web-b"],
        SourceConfiguration=image_source(
            source.describe_service(ServiceArn=populated["web-b"])["Service"][
                "SourceConfiguration"
            ]["ImageRepository"]["ImageIdentifier"],
            RuntimeEnvironmentVariables={"GREETING": "changed"},
        ),
    )
    wait_status(source, populated["web-b"], "RUNNING")
    before = agent.client().describe_service(ServiceArn=agent_arn(agent, "web-b"))["Service"]

    done = slipway_import(agent, account, env, "--only", "web-b")
    assert done.returncode == 0, done.stderr
    assert "Nothing to create: 1 item(s) skipped" in done.stdout
    assert "a service named web-b exists here with another configuration" in done.stdout
    assert "ImageConfiguration.RuntimeEnvironmentVariables.GREETING" in done.stdout
    after = agent.client().describe_service(ServiceArn=before["ServiceArn"])["Service"]
    assert after["SourceConfiguration"] == before["SourceConfiguration"]
    assert "GREETING=b" in agent.get("web-b").text


def agent_arn(agent: AgentProcess, name: str) -> str:
    found = agent.client().list_services()["ServiceSummaryList"]
    return next(s["ServiceArn"] for s in found if s["ServiceName"] == name)


def test_a_region_without_app_runner_is_refused(agent, tmp_path):
    env = {**agent.env, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    env.pop("AWS_PROFILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "slipway", "import", "--region", "mars-east-1", "--dry-run"],
        env={**env, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "--region mars-east-1: App Runner is not offered there" in done.stderr


def test_push_images_copies_the_image_to_this_hosts_registry(
    agent, account, populated, registry, push_hello, tmp_path
):
    source = account.client()
    image = push_hello()
    arn = source.create_service(ServiceName="web-d", SourceConfiguration=image_source(image))[
        "Service"
    ]["ServiceArn"]
    wait_status(source, arn, "RUNNING")

    done = slipway_import(
        agent, account, aws_profile(tmp_path, account),
        "--only", "web-d", "--push-images", "--registry", f"{registry.host}/imported",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    copied = f"{registry.host}/imported/examples/hello:{image.rsplit(':', 1)[1]}"
    assert f"pushed {image} to {copied}" in done.stdout
    here = agent.client().describe_service(ServiceArn=agent_arn(agent, "web-d"))["Service"]
    assert here["SourceConfiguration"]["ImageRepository"]["ImageIdentifier"] == copied
    assert here["Status"] == "RUNNING"
    assert "Hello from slipway" in agent.get("web-d").text
