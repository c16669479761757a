"""Preview environments switched on and off from a code service's Settings tab, in a
real browser against a real agent (GitHub's REST API faked at the HTTP boundary, git
served by dulwich): a bad option comes back next to the form, the policy the CLI would
set is the one the tags carry, and disabling removes it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import docker.errors
import pytest
from playwright.sync_api import expect
from typer.testing import CliRunner

from slipway.cli import app
from testkit.harness import code_source, wait_status
from tests.e2e.test_previews import (  # noqa: F401 - the previews suite's fake GitHub and git
    AGENT_SETTINGS,
    HELLO,
    TOKEN,
    git,
    github,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def built_images(docker_client) -> Iterator[None]:
    """The images the agent builds go once the module's agent is gone."""
    yield
    for image in docker_client.images.list(name="slipway/previewed"):
        with contextlib.suppress(docker.errors.APIError):
            docker_client.images.remove(image.id, force=True)


def test_previews_enabled_and_disabled_on_the_settings_tab(console, git) -> None:  # noqa: F811
    runner = CliRunner()
    env = console.agent.env
    assert runner.invoke(app, ["connections", "create", "github-acme"], env=env).exit_code == 0
    authorized = runner.invoke(
        app, ["connections", "authorize", "github-acme"], env=env, input=TOKEN + "\n"
    )
    assert authorized.exit_code == 0, authorized.output
    client = console.agent.client()
    connection = client.list_connections()["ConnectionSummaryList"][0]["ConnectionArn"]
    git.create_repo("acme/app", HELLO)
    made = client.create_service(
        ServiceName="previewed",
        SourceConfiguration={
            **code_source(git.url("acme/app")),
            "AuthenticationConfiguration": {"ConnectionArn": connection},
        },
    )["Service"]
    wait_status(client, made["ServiceArn"], "RUNNING", timeout=300)

    page = console.page
    console.sign_in()
    page.goto(console.url(f"/services/previewed/{made['ServiceId']}?tab=settings"))
    page.get_by_label("Previews at once").fill("many")
    page.get_by_role("button", name="Enable previews").click()
    expect(page.locator("#previews-error")).to_contain_text("max='many'")

    page.get_by_label("Remove a preview unchanged for").fill("1h")
    page.get_by_label("Previews at once").fill("3")
    page.get_by_label("Poll open pull requests (besides webhooks)").uncheck()
    page.get_by_label("Environment for previews only").fill("MODE=preview")
    page.get_by_role("button", name="Enable previews").click()
    expect(page.locator("#previews")).to_contain_text("On: ttl=1h,max=3,forks=no,poll=no")
    tags = {
        t["Key"]: t["Value"]
        for t in client.list_tags_for_resource(ResourceArn=made["ServiceArn"])["Tags"]
    }
    assert tags["slipway:previews"] == "ttl=1h,max=3,forks=no,poll=no"
    assert tags["slipway:preview-env:MODE"] == "preview"
    page.locator("#previews").scroll_into_view_if_needed()
    console.shoot("previews")

    page.get_by_role("button", name="Disable previews").click()
    expect(page.locator("#previews")).to_contain_text("Off.")
