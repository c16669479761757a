"""slipway notices new commits and images by itself: polls, signed GitHub webhooks and
registry notifications deploy in automatic mode and wait for a person in manual mode."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import httpx
import pytest
from typer.testing import CliRunner

from slipway.cli import app
from testkit.gitserver import GitServer
from testkit.harness import (
    code_source,
    free_port,
    image_source,
    operations,
    push_image,
    require_binary,
    stop_process,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e
SECRET = "webhook-" + uuid.uuid4().hex
REGISTRY_TOKEN = "registry-" + uuid.uuid4().hex
AGENT_SETTINGS = {
    "github_webhook_secret": SECRET,
    "registry_webhook_token": REGISTRY_TOKEN,
    "service_quota": 20,
}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HELLO = {p.name: p.read_text() for p in (EXAMPLES / "python-hello").iterdir() if p.is_file()}
HELLO["apprunner.yaml"] = HELLO["apprunner.yaml"].replace('"set in apprunner.yaml"', "one")


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


def code_service(agent, git, name: str, *, auto: bool = True, tags: dict | None = None) -> str:
    git.create_repo(name, HELLO)
    client = agent.client()
    created = client.create_service(
        ServiceName=name,
        SourceConfiguration=code_source(git.url(name), auto=auto),
        Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
    )
    arn = created["Service"]["ServiceArn"]
    wait_status(client, arn, "RUNNING", timeout=300)
    return arn


def message(agent, name: str) -> str:
    return agent.get(name, "/env/MESSAGE").text.strip()


def change(git, name: str, value: str) -> str:
    return git.commit(name, {"apprunner.yaml": HELLO["apprunner.yaml"].replace("one", value)})


def push_event(git, name: str, sha: str, ref: str = "refs/heads/main", **extra) -> dict:
    return {
        "ref": ref,
        "before": "0" * 40,
        "after": sha,
        "forced": False,
        "deleted": False,
        "repository": {
            "full_name": f"acme/{name}",
            "clone_url": git.url(name) + ".git",
            "html_url": git.url(name),
        },
        **extra,
    }


def send_webhook(agent, payload: dict, *, secret: str = SECRET, event: str = "push", delivery=None):
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{agent.endpoint}/hooks/github",
        content=body,
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature,
            "Content-Type": "application/json",
        },
        timeout=10,
    )


def events(agent, name: str) -> str:
    result = CliRunner().invoke(app, ["logs", name], env=agent.env)
    assert result.exit_code == 0, result.output
    return result.output


def test_poll_deploys_a_new_commit(agent, git):
    arn = code_service(agent, git, "polled", tags={"slipway:poll-interval": "2s"})
    client = agent.client()
    sha = change(git, "polled", "two")
    started = time.monotonic()
    wait_for(lambda: message(agent, "polled") == "two", 120, "the polled commit to serve")
    assert time.monotonic() - started < 90
    wait_status(client, arn, "RUNNING")
    ops = operations(client, arn)
    assert (ops[0]["Type"], ops[0]["Status"]) == ("START_DEPLOYMENT", "SUCCEEDED")
    assert "found by poll" in events(agent, "polled")
    assert sha[:7] in events(agent, "polled")


def test_webhook_deploys_at_once_and_once(agent, git):
    arn = code_service(agent, git, "hooked", tags={"slipway:poll-interval": "1h"})
    client = agent.client()
    sha = change(git, "hooked", "two")
    delivery = str(uuid.uuid4())
    answer = send_webhook(agent, push_event(git, "hooked", sha), delivery=delivery)
    assert answer.status_code == 202, answer.text
    assert "hooked" in answer.text
    wait_for(lambda: message(agent, "hooked") == "two", 60, "the pushed commit to serve")
    wait_status(client, arn, "RUNNING")
    # The same delivery again, and the same commit through another delivery: no new deployment.
    assert (
        send_webhook(agent, push_event(git, "hooked", sha), delivery=delivery).json()["status"]
        == "duplicate"
    )
    # Answered once the push was weighed: the service took it, and had it live already.
    again = send_webhook(agent, push_event(git, "hooked", sha))
    assert again.json()["services"] == ["hooked"]
    assert [o["Type"] for o in operations(client, arn)] == ["START_DEPLOYMENT", "CREATE_SERVICE"]

    # Other branches and events are ignored; a forged signature deploys nothing.
    other = send_webhook(agent, push_event(git, "hooked", sha, ref="refs/heads/dev"))
    assert other.status_code == 202 and other.json()["status"] == "ignored"
    assert send_webhook(agent, {"zen": "hi"}, event="ping").json()["status"] == "pong"
    forged_sha = change(git, "hooked", "forged")
    forged = send_webhook(agent, push_event(git, "hooked", forged_sha), secret="wrong")
    assert forged.status_code == 401
    unknown = send_webhook(agent, push_event(git, "nobody-tracks-this", forged_sha))
    assert unknown.status_code in (202, 401)
    big = httpx.post(
        f"{agent.endpoint}/hooks/github",
        content=b"x" * (26 * 1024 * 1024),
        headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "big"},
        timeout=30,
    )
    assert big.status_code == 413  # each answered: nothing about them is left to do
    assert len(operations(client, arn)) == 2
    assert message(agent, "hooked") == "two"


def test_manual_mode_holds_until_deploy(agent, git):
    arn = code_service(agent, git, "manual", auto=False, tags={"slipway:poll-interval": "1s"})
    client = agent.client()
    sha = change(git, "manual", "two")
    runner = CliRunner()

    def newest() -> str:
        out = runner.invoke(app, ["services", "describe", "manual", "--json"], env=agent.env)
        return json.loads(out.output)["NewestRevision"]

    wait_for(lambda: newest() == sha, 60, "the new commit to be seen")
    described = json.loads(
        runner.invoke(app, ["services", "describe", "manual", "--json"], env=agent.env).output
    )
    assert described["RunningRevision"] != sha
    assert message(agent, "manual") == "one"
    assert len(operations(client, arn)) == 1

    assert runner.invoke(app, ["deploy", "manual"], env=agent.env).exit_code == 0
    wait_for(lambda: message(agent, "manual") == "two", 120, "the held commit to serve")


def test_deleted_branch_and_force_push(agent, git):
    arn = code_service(agent, git, "forcey", tags={"slipway:poll-interval": "1s"})
    client = agent.client()
    git.create_branch("forcey", "side")
    # Force-push: main is rewritten to a commit that is not a descendant.
    rewritten = git.commit(
        "forcey",
        {"apprunner.yaml": HELLO["apprunner.yaml"].replace("one", "rewritten")},
        branch="side",
    )
    git.repo("forcey").refs[b"refs/heads/main"] = rewritten.encode()
    wait_for(lambda: message(agent, "forcey") == "rewritten", 120, "the rewritten branch to serve")
    # Deleted branch: an event says so; the running revision keeps serving.
    del git.repo("forcey").refs[b"refs/heads/main"]
    wait_for(
        lambda: "main" in events(agent, "forcey") and "keeps serving" in events(agent, "forcey"),
        30,
        "an event about the branch",
    )
    assert message(agent, "forcey") == "rewritten"
    wait_status(client, arn, "RUNNING")
    assert [o["Status"] for o in operations(client, arn)] == ["SUCCEEDED", "SUCCEEDED"]


@pytest.fixture
def image_service(agent, push_hello):
    def create(name: str, tags: dict, image: str | None = None) -> tuple[str, str]:
        image = image or push_hello()
        client = agent.client()
        arn = client.create_service(
            ServiceName=name,
            SourceConfiguration=image_source(image, auto=True),
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )["Service"]["ServiceArn"]
        wait_status(client, arn, "RUNNING")
        return arn, image

    return create


def test_registry_poll_redeploys_by_digest(agent, image_service, push_variant):
    arn, image = image_service("imgpoll", {"slipway:poll-interval": "1s"})
    digest = push_variant(image, APP_VERSION="2")
    wait_for(lambda: agent.get("imgpoll", "/env/APP_VERSION").text.strip() == "2", 60, "redeploy")
    runner = CliRunner()
    out = runner.invoke(app, ["services", "describe", "imgpoll", "--json"], env=agent.env)
    wait_for(
        lambda: (
            json.loads(
                runner.invoke(
                    app, ["services", "describe", "imgpoll", "--json"], env=agent.env
                ).output
            )["RunningRevision"]
            == digest
        ),
        30,
        "running digest",
    )
    assert out.exit_code == 0


def test_registry_notification_deploys_at_once(
    agent, image_service, push_hello, push_variant, registry, tmp_path
):
    """A registry that notifies the agent (sharing the test registry's storage)."""
    config = json.loads((Path(registry.log).parent / "config.yml").read_text())
    host = f"127.0.0.1:{free_port()}"
    config["http"] = {"addr": host}
    config["notifications"] = {
        "endpoints": [
            {
                "name": "slipway",
                "url": f"{agent.endpoint}/hooks/registry",
                "headers": {"Authorization": [f"Bearer {REGISTRY_TOKEN}"]},
                "timeout": "2s",
                "threshold": 3,
                "backoff": "1s",
            }
        ]
    }
    (tmp_path / "notify.yml").write_text(json.dumps(config))
    proc = subprocess.Popen(
        [require_binary("docker-registry"), "serve", str(tmp_path / "notify.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: httpx.get(f"http://{host}/v2/").status_code == 200, 10, "registry")
        image = push_hello().replace(registry.host, host)
        arn, _ = image_service("imgnote", {"slipway:poll-interval": "1h"}, image)
        started = time.monotonic()
        push_variant(image, APP_VERSION="notified")
        wait_for(
            lambda: agent.get("imgnote", "/env/APP_VERSION").text.strip() == "notified",
            30,
            "the notified image to serve",
        )
        assert time.monotonic() - started < 30
        assert "registry notification" in events(agent, "imgnote")
    finally:
        stop_process(proc)


class FlakyRegistry:
    """A proxy in front of the test registry that can be told to answer badly."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "ok"
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.forward()

            def do_HEAD(self) -> None:  # noqa: N802
                self.forward()

            def forward(self) -> None:
                if proxy.mode != "ok" and "/manifests/" in self.path:
                    status, body = {
                        "401": (401, b'{"errors":[{"code":"UNAUTHORIZED"}]}'),
                        "404": (404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'),
                        "500": (500, b"internal error"),
                        "garbage": (200, b"\x00\xffnot a manifest"),
                    }[proxy.mode]
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command == "GET":
                        self.wfile.write(body)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = httpx.request(
                    self.command, f"http://{proxy.upstream}{self.path}", headers=headers
                )
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(answer.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize("mode", ["401", "404", "500", "garbage"])
def test_registry_answering_badly_keeps_serving(agent, image_service, push_hello, registry, mode):
    flaky = FlakyRegistry(registry.host)
    try:
        image = push_hello().replace(registry.host, flaky.host)
        name = f"flaky{mode}"
        arn, _ = image_service(name, {"slipway:poll-interval": "1s"}, image)
        flaky.mode = mode
        wait_for(lambda: "cannot check" in events(agent, name), 30, "the failure to be reported")
        assert agent.get(name).status_code == 200
        client = agent.client()
        assert client.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING"
        assert len(operations(client, arn)) == 1
        client.delete_service(ServiceArn=arn)
        wait_status(client, arn, "DELETED")
    finally:
        flaky.server.shutdown()


def test_burst_of_pushes_coalesces(agent, git):
    """Five pushes in two seconds: at most two deployments, the last of the newest."""
    arn = code_service(agent, git, "bursty", tags={"slipway:poll-interval": "1h"})
    client = agent.client()
    shas = []
    for i in range(5):
        shas.append(change(git, "bursty", f"burst{i}"))
        send_webhook(agent, push_event(git, "bursty", shas[-1]))
        time.sleep(0.4)
    wait_for(lambda: message(agent, "bursty") == "burst4", 120, "the newest commit to serve")
    wait_status(client, arn, "RUNNING")
    deployments = [o for o in operations(client, arn) if o["Type"] == "START_DEPLOYMENT"]
    assert 1 <= len(deployments) <= 2
    assert {o["Status"] for o in deployments} == {"SUCCEEDED"}


def test_track_tags_deploys_newest_matching_tag(
    agent, image_service, push_hello, push_variant, registry
):
    """slipway:track-tags ^1 follows the newest 1.x tag, never 2.0."""
    image = push_hello()  # under a tag of this test's own; tags below share its repository
    repo = image.rsplit(":", 1)[0]

    def tag(name: str, version: str) -> None:
        push_variant(image, APP_VERSION=version)  # a new image under the test's tag...
        docker_client = docker.from_env()
        push_image(docker_client, image, f"{repo}:{name}")  # ...published as that tag

    tag("v1.0.0", "1.0.0")
    arn, _ = image_service(
        "tagged", {"slipway:poll-interval": "1s", "slipway:track-tags": "^1"}, f"{repo}:v1.0.0"
    )
    wait_for(lambda: agent.get("tagged", "/env/APP_VERSION").text.strip() == "1.0.0", 60, "1.0")
    tag("v1.2.0", "1.2.0")
    wait_for(lambda: agent.get("tagged", "/env/APP_VERSION").text.strip() == "1.2.0", 60, "1.2")
    tag("v2.0.0", "2.0.0")
    # Two listings of the tags since: the first poll that saw 2.0 has decided by the second.
    seen = len(registry.requests())
    listing = f"GET /v2/{repo.split('/', 1)[1]}/tags/list"
    wait_for(
        lambda: sum(r.startswith(listing) for r in registry.requests()[seen:]) >= 2,
        30,
        "two polls of the tags",
    )
    assert agent.get("tagged", "/env/APP_VERSION").text.strip() == "1.2.0"
