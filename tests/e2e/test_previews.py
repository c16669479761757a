"""Preview environments: each pull request of a code service gets a service of its own,
built from the pull request's branch, announced in one comment that is edited in place,
redeployed by a push, removed when the pull request closes or its TTL passes. GitHub's
REST API is faked at the HTTP boundary (with pull requests); git is served by dulwich."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from typer.testing import CliRunner

from slipway.builds.builder import image_repository
from slipway.cli import app
from testkit.fakepulls import FakeGitHubPulls
from testkit.gitserver import GitServer
from testkit.harness import code_source, wait_for, wait_status

pytestmark = pytest.mark.e2e
TOKEN = "ghp_" + uuid.uuid4().hex
GLOBAL_SECRET = "global-" + uuid.uuid4().hex
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HELLO = {p.name: p.read_text() for p in (EXAMPLES / "python-hello").iterdir() if p.is_file()}
HELLO["apprunner.yaml"] = HELLO["apprunner.yaml"].replace('"set in apprunner.yaml"', "main")


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHubPulls]:
    with FakeGitHubPulls() as fake:
        fake.add_user(TOKEN, "octocat")
        fake.add_repo("acme/app")
        yield fake


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - the fixture's name
    github = request.getfixturevalue("github")
    git = request.getfixturevalue("git")
    return {
        "github_api_url": github.url,
        "github_hosts": f"127.0.0.1:{git.port}",
        "github_webhook_secret": GLOBAL_SECRET,
        "preview_interval": 1,
        "service_quota": 20,
    }


@pytest.fixture(scope="module")
def connection(agent) -> tuple[str, str]:
    """The GitHub connection both tests use: its ARN and its webhook secret."""
    runner = CliRunner()
    created = runner.invoke(app, ["connections", "create", "github-acme"], env=agent.env)
    assert created.exit_code == 0, created.output
    authorized = runner.invoke(
        app,
        ["connections", "authorize", "github-acme", "--json"],
        env=agent.env,
        input=TOKEN + "\n",
    )
    assert authorized.exit_code == 0, authorized.output
    summary = agent.client().list_connections()["ConnectionSummaryList"][0]
    return summary["ConnectionArn"], json.loads(authorized.output)["WebhookSecret"]


def message_file(value: str) -> dict[str, str]:
    return {"apprunner.yaml": HELLO["apprunner.yaml"].replace("main", value)}


def pull_event(git, action: str, number: int, repo: str = "acme/app") -> dict:
    return {
        "action": action,
        "number": number,
        "pull_request": {"number": number, "head": {"sha": "0" * 40}},
        "repository": {"full_name": repo, "clone_url": git.url(repo) + ".git"},
    }


def send(agent, payload: dict, secret: str) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(
        f"{agent.endpoint}/hooks/github",
        content=body,
        headers={
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": "sha256="
            + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "Content-Type": "application/json",
        },
        timeout=30,
    )


def serves(agent, name: str) -> str:
    try:
        return agent.get(name, "/env/MESSAGE").text.strip()
    except httpx.HTTPError:
        return ""


def live_names(client) -> set[str]:
    return {s["ServiceName"] for s in client.list_services()["ServiceSummaryList"]}


def comment_calls(github, method: str, number: int) -> int:
    if method == "POST":
        return sum(
            1
            for r in github.requests
            if r.method == "POST" and r.path == f"/repos/acme/app/issues/{number}/comments"
        )
    return sum(1 for r in github.requests if r.method == "PATCH" and "/issues/comments/" in r.path)


def the_comment(github, number: int) -> str:
    (only,) = github.comments_on("acme/app", number)
    return only["body"]


def test_pull_requests_get_previews(agent, github, git, connection):
    runner = CliRunner()

    def slipway(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(app, list(args), env=agent.env, input=stdin)
        assert result.exit_code == 0, result.output
        return result.output

    git.create_repo("acme/app", HELLO)
    client = agent.client()
    connection, secret = connection
    parent = client.create_service(
        ServiceName="site",
        SourceConfiguration={
            **code_source(git.url("acme/app"), auto=True),
            "AuthenticationConfiguration": {"ConnectionArn": connection},
        },
        Tags=[{"Key": "slipway:poll-interval", "Value": "1h"}],
    )["Service"]["ServiceArn"]
    wait_status(client, parent, "RUNNING", timeout=300)
    assert "Previews of site: ttl=1h,max=3,forks=no,poll=no" in slipway(
        "previews", "enable", "site", "--ttl", "1h", "--max", "3", "--no-poll"
    )

    # Opening a pull request makes a preview that serves the pull request's commit.
    git.create_branch("acme/app", "feature")
    first = git.commit("acme/app", message_file("seven"), branch="feature")
    github.open_pull("acme/app", 7, head_ref="feature", head_sha=first)
    reply = send(agent, pull_event(git, "opened", 7), secret)
    assert reply.status_code == 202 and reply.json()["services"] == ["site-pr-7"], reply.text
    wait_for(lambda: serves(agent, "site-pr-7") == "seven", 300, "the preview to serve PR 7")
    assert serves(agent, "site") == "main"
    wait_for(lambda: f"serving commit {first}" in the_comment(github, 7), 60, "the comment")
    body = the_comment(github, 7)
    assert "ready" in body and f"http://site-pr-7.localhost:{agent.http_port}" in body
    (deployment,) = [d for d in github.deployments.values() if d["environment"] == "site-pr-7"]
    assert deployment["transient_environment"] is True
    wait_for(
        lambda: any(
            s["state"] == "success" and s["environment_url"].startswith("http://site-pr-7.")
            for s in github.deployment_statuses[deployment["id"]]
        ),
        60,
        "the deployment's success with its environment_url",
    )
    listed = slipway("previews", "list")
    assert "site-pr-7" in listed and "ttl=1h" in listed

    # A push to the pull request redeploys it; the one comment is edited, not repeated.
    second = git.commit("acme/app", message_file("eight"), branch="feature")
    github.push_pull("acme/app", 7, second)
    assert send(agent, pull_event(git, "synchronize", 7), secret).json()["status"] == "accepted"
    wait_for(lambda: serves(agent, "site-pr-7") == "eight", 300, "the push to be deployed")
    wait_for(lambda: f"serving commit {second}" in the_comment(github, 7), 60, "the edit")
    assert comment_calls(github, "POST", 7) == 1
    assert comment_calls(github, "PATCH", 7) >= 2  # building -> ready -> deploying -> ready

    # A fork's pull request is refused, and told why.
    github.open_pull("acme/app", 8, head_ref="main", head_sha=second, head_repo="mallory/app")
    refused = send(agent, pull_event(git, "opened", 8), secret).json()
    assert refused["status"] == "refused" and "fork" in refused["reason"], refused
    assert "--allow-forks" in the_comment(github, 8)
    assert "site-pr-8" not in live_names(client)

    # Bad input is ignored with a reason, and audited.
    stranger = send(agent, pull_event(git, "opened", 3, repo="acme/unknown"), GLOBAL_SECRET)
    assert stranger.status_code == 202 and stranger.json()["status"] == "ignored"
    assert "no service with previews enabled" in stranger.json()["reason"]
    missing = send(agent, pull_event(git, "opened", 99), secret).json()
    assert missing["status"] == "ignored" and "#99 does not exist" in missing["reason"]

    # Closing (merging) deletes the preview, its images and its deployment.
    github.close_pull("acme/app", 7, merged=True)
    closed = send(agent, pull_event(git, "closed", 7), secret).json()
    assert closed["status"] == "accepted", closed
    wait_for(lambda: "site-pr-7" not in live_names(client), 120, "the preview to be deleted")
    assert serves(agent, "site") == "main"
    wait_for(
        lambda: not docker.from_env().images.list(name=image_repository("site-pr-7")),
        60,
        "the preview's images to be removed",
    )
    assert "removed" in the_comment(github, 7) and "merged" in the_comment(github, 7)
    assert comment_calls(github, "POST", 7) == 1
    assert any(s["state"] == "inactive" for s in github.deployment_statuses[deployment["id"]])
    again = send(agent, pull_event(git, "closed", 7), secret).json()
    assert again["status"] == "ignored" and "no preview site-pr-7 is left" in again["reason"]
    audit = json.loads(slipway("audit", "--json"))
    ignored = [r for r in audit if r["Operation"] == "webhook:github" and r["Outcome"] == "ignored"]
    assert len(ignored) >= 3

    # A preview past its TTL is removed, and its comment says so.
    github.open_pull("acme/app", 9, head_ref="feature", head_sha=second)
    assert send(agent, pull_event(git, "opened", 9), secret).json()["status"] == "accepted"
    wait_for(lambda: serves(agent, "site-pr-9") == "eight", 300, "the preview of PR 9")
    slipway("previews", "enable", "site", "--ttl", "1s", "--no-poll")
    wait_for(lambda: "site-pr-9" not in live_names(client), 60, "the TTL to remove PR 9's preview")
    wait_for(lambda: "TTL" in the_comment(github, 9), 30, "the comment to name the TTL")
    assert "site" in live_names(client) and serves(agent, "site") == "main"


def test_without_webhooks_open_pull_requests_are_polled(agent, github, git, connection):
    """No delivery at all: the agent lists open pull requests through the connection."""
    github.add_repo("acme/polled")
    git.create_repo("acme/polled", HELLO)
    client = agent.client()
    parent = client.create_service(
        ServiceName="polled",
        SourceConfiguration={
            **code_source(git.url("acme/polled"), auto=True),
            "AuthenticationConfiguration": {"ConnectionArn": connection[0]},
        },
        Tags=[
            {"Key": "slipway:poll-interval", "Value": "1h"},
            {"Key": "slipway:previews", "Value": "max=1"},
        ],
    )["Service"]["ServiceArn"]
    wait_status(client, parent, "RUNNING", timeout=300)
    git.create_branch("acme/polled", "topic")
    sha = git.commit("acme/polled", message_file("polled"), branch="topic")
    github.open_pull("acme/polled", 4, head_ref="topic", head_sha=sha)
    wait_for(lambda: serves(agent, "polled-pr-4") == "polled", 300, "the polled preview")

    # A second pull request is past the maximum of one: the oldest preview goes.
    github.open_pull("acme/polled", 5, head_ref="topic", head_sha=sha)
    wait_for(lambda: serves(agent, "polled-pr-5") == "polled", 300, "the second preview")
    wait_for(lambda: "polled-pr-4" not in live_names(client), 60, "the oldest to be removed")
    # ... and stays removed while its pull request is unchanged, however often it is polled.
    wait_for(lambda: "more than 1" in agent.log_text(), 30, "the removal to be logged")
    polls = sum(1 for r in github.requests if r.path == "/repos/acme/polled/pulls")
    wait_for(
        lambda: sum(1 for r in github.requests if r.path == "/repos/acme/polled/pulls") > polls + 2,
        60,
        "three more polls",
    )
    assert "polled-pr-4" not in live_names(client)
    (note,) = github.comments_on("acme/polled", 4)
    assert "max" in note["body"] and "removed" in note["body"]

    github.close_pull("acme/polled", 5)
    wait_for(lambda: "polled-pr-5" not in live_names(client), 60, "the closed one to go")
    assert "was closed" in github.comments_on("acme/polled", 5)[0]["body"]


def test_a_fork_preview_never_reads_the_parents_secrets(agent, github, git, connection):
    """Same repository: the preview is granted what its parent is. A fork (allowed): its
    apprunner.yaml may name the secret, and its deployment fails instead of reading it."""
    planted = "planted-" + uuid.uuid4().hex
    secrets = '  secrets:\n    - name: DB_PASSWORD\n      value-from: "db-password"\n'

    def with_secret(message: str) -> dict[str, str]:
        return {"apprunner.yaml": message_file(message)["apprunner.yaml"] + secrets}

    files = {**HELLO, **with_secret("main")}
    github.add_repo("acme/vault")
    git.create_repo("acme/vault", files)
    git.create_repo("mallory/vault", files)
    put = CliRunner().invoke(
        app,
        ["secrets", "put", "db-password", "--service", "vault"],
        env=agent.env,
        input=planted + "\n",
    )
    assert put.exit_code == 0, put.output
    client = agent.client()
    parent = client.create_service(
        ServiceName="vault",
        SourceConfiguration={
            **code_source(git.url("acme/vault"), auto=True),
            "AuthenticationConfiguration": {"ConnectionArn": connection[0]},
        },
        Tags=[
            {"Key": "slipway:poll-interval", "Value": "1h"},
            {"Key": "slipway:previews", "Value": "forks=yes"},
        ],
    )["Service"]["ServiceArn"]
    wait_status(client, parent, "RUNNING", timeout=300)
    assert agent.get("vault", "/env/DB_PASSWORD").text.strip() == planted

    git.create_branch("acme/vault", "own")
    own = git.commit("acme/vault", with_secret("own"), branch="own")
    github.open_pull("acme/vault", 1, head_ref="own", head_sha=own)
    wait_for(lambda: serves(agent, "vault-pr-1") == "own", 300, "the same-repository preview")
    assert agent.get("vault-pr-1", "/env/DB_PASSWORD").text.strip() == planted

    theirs = git.commit("mallory/vault", with_secret("theirs"))
    github.open_pull(
        "acme/vault",
        2,
        head_ref="main",
        head_sha=theirs,
        head_repo="mallory/vault",
        clone_url=git.url("mallory/vault"),
    )
    wait_for(lambda: "vault-pr-2" in live_names(client), 60, "the fork's preview")
    (fork,) = [
        s for s in client.list_services()["ServiceSummaryList"] if s["ServiceName"] == "vault-pr-2"
    ]
    wait_status(client, fork["ServiceArn"], "CREATE_FAILED", timeout=300)
    source = client.describe_service(ServiceArn=fork["ServiceArn"])["Service"]
    assert "AuthenticationConfiguration" not in source["SourceConfiguration"]
    wait_for(lambda: "failed" in the_comment_of(github, "acme/vault", 2), 60, "the comment")
    assert planted not in the_comment_of(github, "acme/vault", 2)

    # Disabled: the previews go, the parent stays.
    disabled = CliRunner().invoke(app, ["previews", "disable", "vault"], env=agent.env)
    assert disabled.exit_code == 0, disabled.output
    wait_for(
        lambda: not {"vault-pr-1", "vault-pr-2"} & live_names(client), 60, "the previews to go"
    )
    assert "previews were disabled" in the_comment_of(github, "acme/vault", 1)
    assert agent.get("vault", "/env/DB_PASSWORD").text.strip() == planted


def the_comment_of(github, repo: str, number: int) -> str:
    (only,) = github.comments_on(repo, number)
    return only["body"]
