"""The terminal follows its operations: ``--wait`` prints a deployment's steps as they
begin and exits with its outcome; ``events --follow`` outlives an agent restart."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from testkit.gitserver import GitServer
from testkit.harness import code_source, image_source, wait_for, wait_status

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {"build_timeout": 120, "settle_seconds": 2, "drain_seconds": 2}

APP = """\
import http.server, os

class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("MESSAGE", "none").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("", 8080), Hello).serve_forever()
"""


def apprunner_yaml(message: str, build: str = "echo building") -> str:
    return f"""\
version: 1.0
runtime: python3
build:
  commands:
    build:
      - {build}
run:
  command: python app.py
  network:
    port: 8080
  env:
    - name: MESSAGE
      value: "{message}"
"""


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


def cli(agent, *args: str) -> subprocess.CompletedProcess:
    """The real CLI, its output a pipe (not a terminal): one line per step."""
    return subprocess.run(
        [sys.executable, "-m", "slipway", *args],
        env=agent.env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def service(agent, git) -> str:
    git.create_repo("waited", {"app.py": APP, "apprunner.yaml": apprunner_yaml("first")})
    client = agent.client()
    created = client.create_service(
        ServiceName="waited", SourceConfiguration=code_source(git.url("waited"))
    )
    wait_status(client, created["Service"]["ServiceArn"], "RUNNING", timeout=300)
    return "waited"


def steps(output: str) -> list[str]:
    return [line.removeprefix("==> ") for line in output.splitlines() if line.startswith("==> ")]


def test_deploy_wait_prints_the_steps_in_order_and_the_url(agent, git, service):
    git.commit("waited", {"apprunner.yaml": apprunner_yaml("second")})
    done = cli(agent, "deploy", service, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    seen = steps(done.stdout)
    build_steps = [s for s in seen if s.startswith("build step ")]
    assert build_steps, done.stdout
    assert [s for s in seen if not s.startswith("build step ")] == [
        "fetch",
        "build",
        "start",
        "health",
        "switch",
        "drain",
    ], done.stdout
    assert seen.index(build_steps[0]) == seen.index("build") + 1
    assert seen.index(build_steps[-1]) < seen.index("start")
    assert "START_DEPLOYMENT" in done.stdout and "succeeded" in done.stdout
    assert f"URL: http://{service}." in done.stdout
    assert agent.get(service).text == "second"  # the operation really ended live


def test_deploy_wait_on_a_failing_build_names_the_step_and_shows_its_lines(agent, git, service):
    git.commit(
        "waited",
        {"apprunner.yaml": apprunner_yaml("third", "echo about to fail && exit 3")},
    )
    done = cli(agent, "deploy", service, "--wait")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED at step build step" in done.stderr, done.stderr
    assert "last build lines:" in done.stderr
    assert "about to fail" in done.stderr
    assert "error: " in done.stderr
    assert agent.get(service).text == "second"  # the live revision keeps serving


def test_delete_wait_ends_when_the_service_is_gone(agent, hello_image):
    client = agent.client()
    created = client.create_service(
        ServiceName="waited-delete", SourceConfiguration=image_source(hello_image)
    )
    wait_status(client, created["Service"]["ServiceArn"], "RUNNING")
    done = cli(agent, "services", "delete", "waited-delete", "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "DELETE_SERVICE" in done.stdout and "succeeded" in done.stdout
    assert "URL:" not in done.stdout
    status = client.describe_service(ServiceArn=created["Service"]["ServiceArn"])
    assert status["Service"]["Status"] == "DELETED"


def test_events_follow_reconnects_after_an_agent_restart(agent, service):
    follower = subprocess.Popen(
        [sys.executable, "-m", "slipway", "events", service, "--follow"],
        env=agent.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=lambda: lines.extend(iter(follower.stdout.readline, ""))),
        threading.Thread(target=lambda: errors.extend(iter(follower.stderr.readline, ""))),
    ]
    for reader in readers:
        reader.start()
    try:
        wait_for(lambda: lines, timeout=30, what="the events already recorded")
        agent.kill()
        wait_for(lambda: any("reconnecting" in e for e in errors), 30, "the follower noticing")
        agent.start()
        before = len(lines)
        client = agent.client()
        arn = client.list_services()["ServiceSummaryList"]
        arn = next(s["ServiceArn"] for s in arn if s["ServiceName"] == service)
        client.pause_service(ServiceArn=arn)
        wait_for(
            lambda: any("PAUSED" in line for line in lines[before:]),
            timeout=120,
            what="the pause, printed by the same follower after the restart",
        )
        assert any("reconnected" in e for e in errors), errors
        client.resume_service(ServiceArn=arn)
        wait_status(client, arn, "RUNNING", timeout=120)
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        for reader in readers:
            reader.join(timeout=10)
