"""The console's observability, VPC and secrets pages in a real browser against a real
agent: create and delete an observability configuration, turn a service's tracing on
from its Settings tab, create a VPC connector on a Docker network and delete it, save,
grant, revoke and delete a secret whose value never comes back; bad input comes back
next to its field, and planted script in a name is shown as text only (a page that runs
it opens a dialog, which fails the test: ``console`` fixture). A session and an unused
sign-in link outlive an agent restart, and sign-out still ends a session on the server."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from testkit.harness import image_source, wait_for, wait_status

pytestmark = pytest.mark.e2e
SCRIPT = "<script>alert('name')</script>"


def test_observability_configurations_and_a_services_tracing(console, hello_image) -> None:
    page = console.page
    console.sign_in()
    page.get_by_role("link", name="Observability").click()
    page.get_by_label("Name").fill(SCRIPT)
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#name-error")).to_contain_text(SCRIPT)  # the API's check, as text
    expect(page.get_by_label("Name")).to_have_value(SCRIPT)

    page.get_by_label("Name").fill("tracing")
    page.get_by_label("Tracing vendor").select_option("AWSXRAY")
    page.get_by_role("button", name="Create").click()
    row = page.locator("tr", has=page.get_by_text("tracing", exact=True))
    expect(row).to_contain_text("AWSXRAY")
    page.get_by_label("Name").fill("spare")
    page.get_by_role("button", name="Create").click()
    spare = page.locator("tr", has=page.get_by_text("spare", exact=True))
    expect(spare).to_contain_text("none")
    console.shoot("observability")
    spare.get_by_role("button", name="Delete spare #1").click()
    expect(page.locator("table")).not_to_contain_text("spare")

    client = console.agent.client()
    made = client.create_service(
        ServiceName="traced", SourceConfiguration=image_source(hello_image)
    )["Service"]
    wait_status(client, made["ServiceArn"], "RUNNING", timeout=180)
    page.goto(console.url(f"/services/traced/{made['ServiceId']}?tab=settings"))
    page.get_by_label("Tracing").select_option(label="tracing #1")
    page.get_by_role("button", name="Save tracing and deploy").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("UPDATE_SERVICE")

    def traced() -> dict:
        setting = client.describe_service(ServiceArn=made["ServiceArn"])["Service"].get(
            "ObservabilityConfiguration", {}
        )
        return setting if setting.get("ObservabilityEnabled") else {}

    setting = wait_for(traced, 180, "tracing on")
    assert "/tracing/1/" in setting["ObservabilityConfigurationArn"]


def test_a_vpc_connector_from_create_to_delete(console, docker_client) -> None:
    network = docker_client.networks.create(f"slipway-console-{console.agent.port}-db")
    try:
        page = console.page
        console.sign_in()
        page.get_by_role("link", name="VPC", exact=True).click()
        page.get_by_label("Connector name").fill("to-db")
        page.get_by_label("Subnets").fill("no such network!")
        page.get_by_role("button", name="Create connector").click()
        expect(page.locator("#subnets-error")).to_contain_text("Subnets")
        expect(page.get_by_label("Connector name")).to_have_value("to-db")

        page.get_by_label("Subnets").fill(network.name)
        page.get_by_label("Security groups").fill("sg-0123abcd")
        page.get_by_role("button", name="Create connector").click()
        row = page.locator("tr", has=page.get_by_text("to-db", exact=True))
        expect(row).to_contain_text(network.name)
        expect(row).to_contain_text("sg-0123abcd")
        console.shoot("vpc")
        page.get_by_label("Connection name").fill("private-web")
        page.get_by_label("VPC id", exact=True).fill("vpc-0123abcd")
        page.get_by_label("VPC endpoint id").fill("vpce-0123abcd")
        page.get_by_role("button", name="Create ingress connection").click()
        # no service to pick (ServiceArn), or no private listener on this host
        expect(page.locator(".field-error").first).to_contain_text(
            re.compile("ServiceArn|private listener")
        )
        expect(page.get_by_label("Connection name")).to_have_value("private-web")
        row = page.locator("tr", has=page.get_by_text("to-db", exact=True))
        row.get_by_role("button", name="Delete to-db #1").click()
        expect(page.locator("table").first).not_to_contain_text("to-db")
    finally:
        network.remove()


def test_secrets_are_saved_granted_and_never_shown_back(console) -> None:
    page = console.page
    console.sign_in()
    page.get_by_role("link", name="Secrets").click()
    page.get_by_label("Secret name").fill(SCRIPT)
    page.get_by_label("Value", exact=True).fill("hunter2-refused")
    page.get_by_role("button", name="Save secret").click()
    expect(page.locator("#secret_name-error")).to_contain_text(SCRIPT)  # as text
    expect(page.get_by_label("Value", exact=True)).to_have_value("")
    assert "hunter2-refused" not in page.content()

    page.get_by_label("Secret name").fill("db/password")
    page.get_by_label("Value", exact=True).fill("hunter2")
    page.get_by_label("Grant to services").fill("web-app")
    page.get_by_role("button", name="Save secret").click()
    row = page.locator("table.secrets tr", has=page.get_by_text("db/password", exact=True))
    expect(row).to_contain_text("web-app")
    assert "hunter2" not in page.content()
    page.get_by_label("Service name").fill("x")
    page.get_by_role("button", name="Grant").click()
    expect(page.locator("#service-error")).to_contain_text("service name 'x'")
    page.get_by_label("Service name").fill("worker")
    page.get_by_role("button", name="Grant").click()
    expect(row).to_contain_text("worker")
    console.shoot("secrets")
    row.get_by_role("button", name="Revoke db/password from web-app").click()
    expect(row).not_to_contain_text("web-app")
    row.get_by_role("button", name="Delete db/password").click()
    expect(page.locator("table.secrets")).to_contain_text("None")


def test_a_session_and_a_link_outlive_an_agent_restart_and_sign_out_still_ends_it(
    console,
) -> None:
    page = console.page
    console.sign_in()
    expect(page.get_by_role("heading", name="Services")).to_be_visible()
    link = console.agent.cli("console-link").stdout.strip()
    console.agent.kill()
    console.agent.start()
    page.goto(console.url("/secrets"))
    expect(page.get_by_role("heading", name="Secrets")).to_be_visible()  # still signed in
    other = console.context.browser.new_context()
    try:  # the link made before the restart signs another browser in, once
        opened = other.new_page()
        path = link.split("/console", 1)[1]  # on the agent's port, which a restart may move
        opened.goto(console.url(path))
        expect(opened.get_by_role("heading", name="Services")).to_be_visible()
        opened.goto(console.url(path))
        expect(opened.locator("#signin-error")).to_have_text(
            "This sign-in link was used already or has expired"
        )
    finally:
        other.close()

    cookies = console.context.cookies()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    console.context.add_cookies(cookies)  # the old cookie, replayed
    page.goto(console.url("/secrets"))
    expect(page.locator("#signin-error")).to_have_text("Your session ended: sign in again")
