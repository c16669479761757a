"""A code service through the console: its build log streams into the operation's page
line by line while the build runs, and a commit message and build output carrying
script are shown as text."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from playwright.sync_api import expect

from testkit.gitserver import GitServer

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {"build_timeout": 300}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python-hello"
COMMIT = "<script>alert('commit')</script> first"
BUILD_LINE = '"><img src=x onerror=alert(2)>'
APPRUNNER_YAML = f"""version: 1.0
runtime: python3
build:
  commands:
    build:
      - echo step-one && sleep 2
      - echo '{BUILD_LINE}' && sleep 2
      - pip install -r requirements.txt
run:
  command: python app.py
  network:
    port: 8080
"""
# Counts of the log's lines, one per change the page saw: several mean it streamed.
WATCH = """() => {
  const log = document.getElementById("op-log");
  window.seen = [];
  new MutationObserver(() => window.seen.push(log.querySelectorAll(".line").length))
    .observe(log, {childList: true});
}"""


@pytest.fixture(scope="module", autouse=True)
def built_images(docker_client) -> Iterator[None]:
    """The images the agent builds for code-console go once the module's agent (and its
    containers) are gone: set up first, so torn down last."""
    yield
    for image in docker_client.images.list(name="slipway/code-console"):
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(image.id, force=True)


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    with GitServer(tmp_path_factory.mktemp("git")) as server:
        yield server


def test_a_code_service_streams_its_build_log_line_by_line(console, git) -> None:
    files = {p.name: p.read_text() for p in EXAMPLE.iterdir() if p.is_file()}
    git.create_repo("console-py", {**files, "apprunner.yaml": APPRUNNER_YAML}, message=COMMIT)
    page = console.page
    console.sign_in()
    page.get_by_role("link", name="Create service").first.click()
    page.get_by_label("Service name").fill("code-console")
    page.get_by_label("Source type").select_option("repository")
    expect(page.get_by_label("Image URI")).to_be_hidden()
    page.get_by_label("Repository URL").fill(git.url("console-py"))
    page.get_by_label("Branch").fill("main")
    console.shoot("create")
    page.get_by_role("button", name="Create and deploy").click()

    page.wait_for_selector("#op-log")
    page.evaluate(WATCH)
    expect(page.locator("#op-log")).to_contain_text("[Build]", timeout=240_000)
    expect(page.locator("#op-status")).to_have_text("SUCCEEDED", timeout=300_000)
    expect(page.locator("#service-status")).to_have_text("RUNNING")
    log = page.locator("#op-log")
    expect(log).to_contain_text("step-one")
    expect(log).to_contain_text(BUILD_LINE)  # as text: no img element was made
    assert log.locator("img").count() == 0
    seen = page.evaluate("window.seen")
    assert len(set(seen)) >= 3 and seen == sorted(seen), seen  # lines came in as written
    console.shoot("build-log")

    page.get_by_role("link", name="code-console").first.click()
    page.get_by_role("link", name="Revisions").click()
    expect(page.locator(".commit").first).to_have_text(COMMIT)
    assert console.agent.get("code-console").status_code == 200
