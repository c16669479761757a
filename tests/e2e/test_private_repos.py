"""A private GitHub repository through a connection: the token authorizes clones and
polls, GitHub hears about each deployment, and a revoked token stops nothing running.
GitHub's REST API is faked at the HTTP boundary; the repository is served by dulwich."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from slipway.cli import app
from testkit.fakegithub import FakeGitHub
from testkit.gitserver import GitServer
from testkit.harness import code_source, wait_for, wait_status

pytestmark = pytest.mark.e2e
TOKEN = "ghp_" + uuid.uuid4().hex
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HELLO = {p.name: p.read_text() for p in (EXAMPLES / "python-hello").iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_user(TOKEN, "octocat")
        fake.add_repo("acme/app", private=True, readers={TOKEN})
        yield fake


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git"), auth=("x-access-token", TOKEN)) as server:
        yield server


def AGENT_SETTINGS(request: pytest.FixtureRequest) -> dict:  # noqa: N802 - the fixture's name
    github = request.getfixturevalue("github")
    git = request.getfixturevalue("git")
    return {"github_api_url": github.url, "github_hosts": f"127.0.0.1:{git.port}"}


def test_private_repository_with_feedback_and_revoked_token(agent, github, git):
    git.create_repo("acme/app", HELLO)
    runner = CliRunner()

    def slipway(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(app, list(args), env=agent.env, input=stdin)
        assert result.exit_code == 0, result.output
        return result.output

    slipway("connections", "create", "github-acme")
    assert "PENDING_HANDSHAKE" in slipway("connections", "list")
    bad = runner.invoke(
        app, ["connections", "authorize", "github-acme"], env=agent.env, input="ghp_wrong\n"
    )
    assert bad.exit_code == 1 and "rejected" in bad.output
    out = slipway("connections", "authorize", "github-acme", stdin=TOKEN + "\n")
    assert "AVAILABLE as octocat" in out
    client = agent.client()
    connection = client.list_connections()["ConnectionSummaryList"][0]
    assert (connection["ConnectionName"], connection["Status"]) == ("github-acme", "AVAILABLE")

    created = client.create_service(
        ServiceName="private-app",
        SourceConfiguration={
            **code_source(git.url("acme/app"), auto=None),
            "AuthenticationConfiguration": {"ConnectionArn": connection["ConnectionArn"]},
        },
        Tags=[{"Key": "slipway:poll-interval", "Value": "1s"}],
    )
    arn = created["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING", timeout=300)
    assert agent.get("private-app").text.strip() == "Hello from python-hello"

    def posts() -> list:
        return [r for r in github.requests if r.method == "POST"]

    wait_for(lambda: len(posts()) == 5, 30, "GitHub to hear of the deployment")
    posts = posts()
    states = [(r.path.split("/")[4], (r.body or {}).get("state")) for r in posts]
    assert states == [
        ("deployments", None),
        ("deployments", "in_progress"),
        ("statuses", "pending"),
        ("deployments", "success"),
        ("statuses", "success"),
    ]
    assert posts[3].body["environment_url"].startswith("http://private-app.localhost")
    assert posts[4].body["context"] == "slipway/private-app"

    # The connection is in use: it cannot be deleted.
    with pytest.raises(client.exceptions.InvalidRequestException, match="private-app"):
        client.delete_connection(ConnectionArn=connection["ConnectionArn"])

    # Revoked: polls fail with a reason in the events stream; the app keeps serving.
    github.revoke(TOKEN)
    git.auth = ("x-access-token", "a-new-token-the-agent-does-not-have")
    git.commit("acme/app", {"app.py": HELLO["app.py"].replace("Hello from", "Bye from")})

    def events() -> str:
        return slipway("logs", "private-app")

    wait_for(lambda: "cannot check" in events(), 30, "the poll failure to be reported")
    assert agent.get("private-app").text.strip() == "Hello from python-hello"
    assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING"

    # The token is nowhere in clear text: not in logs, events, or the store.
    assert TOKEN not in agent.log_text()
    assert TOKEN not in events()
    for path in (agent.root / "data").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
