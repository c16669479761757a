"""The web console in a real browser against a real agent: sign in, create an image
service and watch it reach RUNNING without reloading, open its URL, pause (503) and
resume, deploy again and roll back, link a custom domain and see its records, see the
metrics move after a burst, delete with typed confirmation, sign out and be refused.
Names, tags, env values and log lines carry planted script, shown as text only (a page
that runs it opens a dialog, which fails the test: ``console`` fixture)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from testkit.harness import wait_for

pytestmark = pytest.mark.e2e
AGENT_SETTINGS = {"service_quota": 10}
SCRIPT = "<script>alert('tag')</script>"
IMG = '"><img src=x onerror=alert(1)>'
RUNNING_TIMEOUT = 180_000  # ms: a shared 2-core host pulls and starts slowly


def status_of(page, name: str):
    return page.locator("tr", has=page.get_by_role("link", name=name, exact=True)).locator(
        ".status"
    )


def test_a_wrong_key_is_refused_with_a_clear_message(console) -> None:
    console.sign_in(secret="wrong-secret")
    expect(console.page.locator("#signin-error")).to_have_text(
        "The access key id or secret is wrong, or the key is not active"
    )
    console.shoot("signin")


def test_an_image_service_from_create_to_delete(console, hello_image, push_variant) -> None:
    page = console.page
    console.sign_in()
    expect(page.get_by_role("heading", name="Services")).to_be_visible()

    # create, with script planted in the tag and env value; a bad name first
    page.get_by_role("link", name="Create service").first.click()
    page.get_by_label("Service name").fill("<b>bad</b>")
    page.get_by_label("Image URI").fill(hello_image)
    page.get_by_role("button", name="Create and deploy").click()
    expect(page.locator("#name-error")).to_contain_text("at 'ServiceName' failed to satisfy")
    expect(page.get_by_label("Service name")).to_have_value("<b>bad</b>")  # kept as typed
    page.get_by_label("Service name").fill("web-console")
    page.get_by_label("Port").fill("8080")
    page.get_by_label("Tags").fill(f"team={SCRIPT}")
    page.get_by_label("Environment variables").fill(f"GREETING={IMG}")
    page.evaluate("window.stayed = true")  # gone if the page reloads
    page.get_by_role("button", name="Create and deploy").click()

    # the operation's page follows it live: its log and status change without a reload
    expect(page.get_by_role("heading", name=re.compile("CREATE_SERVICE"))).to_be_visible()
    page.evaluate("window.stayed = true")
    expect(page.locator("#op-status")).to_have_text("SUCCEEDED", timeout=RUNNING_TIMEOUT)
    expect(page.locator("#service-status")).to_have_text("RUNNING")
    assert page.evaluate("window.stayed") is True
    expect(page.locator("#op-log")).to_contain_text("[AppRunner]")
    console.shoot("operation")

    # the list shows it running, the tag as text
    page.get_by_role("link", name="Services", exact=True).click()
    expect(status_of(page, "web-console")).to_have_text("RUNNING")
    expect(page.locator(".tag").first).to_have_text(f"team={SCRIPT}")
    console.shoot("services")
    page.get_by_label("Name").fill("zzz")  # filtered in place (htmx), then back
    expect(page.locator("#service-rows")).to_contain_text("No services match this filter")
    page.get_by_label("Tag").fill("team")
    page.get_by_label("Name").fill("web")
    expect(status_of(page, "web-console")).to_have_text("RUNNING")

    # its URL answers, with the planted env value as the app's text
    page.get_by_role("link", name="web-console", exact=True).click()
    expect(page.locator("#dns-target")).to_be_visible()
    expect(page.locator("table.kv")).to_contain_text(f"GREETING{IMG}")
    console.shoot("service-overview")
    url = page.locator("#service-url").get_attribute("href")
    app = console.context.new_page()
    app.goto(url)
    expect(app.locator("body")).to_contain_text(f"Hello from slipway! GREETING={IMG}")
    app.close()

    # pause: the URL answers 503; resume: it serves again
    page.locator("#pause-button").click()
    expect(page.locator("#op-status")).to_have_text("SUCCEEDED", timeout=RUNNING_TIMEOUT)
    expect(page.locator("#service-status")).to_have_text("PAUSED")
    assert console.agent.get("web-console").status_code == 503
    page.get_by_role("link", name=re.compile("web-console")).first.click()
    page.locator("#resume-button").click()
    expect(page.locator("#op-status")).to_have_text("SUCCEEDED", timeout=RUNNING_TIMEOUT)
    expect(page.locator("#service-status")).to_have_text("RUNNING")
    assert console.agent.get("web-console").status_code == 200

    # a new revision, then roll back to the first
    push_variant(hello_image, VERSION="second")
    page.get_by_role("link", name=re.compile("web-console")).first.click()
    page.locator("#deploy-button").click()
    expect(page.locator("#op-status")).to_have_text("SUCCEEDED", timeout=RUNNING_TIMEOUT)
    assert console.agent.get("web-console", "/env/VERSION").text.strip() == "second"
    page.get_by_role("link", name=re.compile("web-console")).first.click()
    page.get_by_role("link", name="Revisions").click()
    console.shoot("revisions")
    page.get_by_role("button", name=re.compile("^Roll back to")).first.click()
    expect(page.locator("#op-status")).to_have_text("SUCCEEDED", timeout=RUNNING_TIMEOUT)
    assert console.agent.get("web-console", "/env/VERSION").status_code == 404

    # edit the configuration: a bad port is named next to its field, then a new env value
    page.get_by_role("link", name=re.compile("web-console")).first.click()
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_label("Environment variables")).to_have_value(f"GREETING={IMG}")
    page.get_by_label("Port").fill("not-a-port")
    page.get_by_role("button", name="Save and deploy").click()
    expect(page.locator("#port-error")).to_contain_text("Port")
    page.get_by_label("Port").fill("8080")
    page.get_by_label("Environment variables").fill(f"GREETING={IMG}\nEDITED=yes")
    page.get_by_role("button", name="Save and deploy").click()
    expect(page.get_by_role("heading", name=re.compile("UPDATE_SERVICE"))).to_be_visible()
    expect(page.locator("#op-status")).to_have_text("SUCCEEDED", timeout=RUNNING_TIMEOUT)
    assert console.agent.get("web-console", "/env/EDITED").text.strip() == "yes"

    # a custom domain and the records to create
    page.get_by_role("link", name=re.compile("web-console")).first.click()
    page.get_by_role("link", name="Overview").click()
    page.get_by_label("Domain name").fill("not a domain")
    page.get_by_role("button", name="Link domain").click()
    expect(page.locator("#domain-error")).to_be_visible()
    page.get_by_label("Domain name").fill("shop.example.com")
    page.get_by_role("button", name="Link domain").click()
    row = page.locator('tr[data-domain="shop.example.com"]')
    expect(row).to_contain_text("CNAME shop.example.com")
    expect(row.locator(".status")).to_have_text(re.compile("PENDING|CREATING|ACTIVE|BINDING"))

    # metrics: a burst of requests moves the chart's total
    page.get_by_role("link", name="Metrics").click()
    charts = page.locator("[data-metrics]")
    expect(charts).to_have_attribute("data-total", re.compile(r"\d+"))
    before = int(charts.get_attribute("data-total"))
    for _ in range(30):
        assert console.agent.get("web-console").status_code == 200
    expect(page.locator("#chart-requests canvas")).to_be_visible()

    def moved() -> bool:
        return int(charts.get_attribute("data-total")) >= before + 30

    wait_for(lambda: moved() or page.wait_for_timeout(1000), timeout=120, what="chart total")
    console.shoot("metrics")
    # the same burst over a day and a week, from the metrics history
    for label, minutes, words in (("24 h", "1440", "24 hours"), ("7 d", "10080", "7 days")):
        page.get_by_role("button", name=label).click()
        expect(page.get_by_role("button", name=label)).to_have_attribute("aria-pressed", "true")
        expect(charts).to_have_attribute("data-shown", minutes)
        expect(page.locator("#metrics-total")).to_contain_text(words)
        assert moved()

    # logs and events tabs render the planted values as text
    page.get_by_role("link", name="Events").click()
    console.shoot("events")
    page.get_by_role("link", name="Logs").click()
    expect(page.locator("#app-log")).to_be_visible()
    assert console.agent.get("web-console", "/env/follow-marker").status_code == 404
    expect(page.locator("#app-log")).to_contain_text("/env/follow-marker", timeout=60_000)
    console.shoot("logs")

    # delete: the button waits for the typed name; the operation shows it going
    page.get_by_role("link", name="Settings").click()
    delete = page.locator("#delete-button")
    expect(delete).to_be_disabled()
    page.get_by_label("Service name").last.fill("web-consol")
    expect(delete).to_be_disabled()
    page.get_by_label("Service name").last.fill("web-console")
    delete.click()
    expect(page.locator("#op-status")).to_have_text("SUCCEEDED", timeout=RUNNING_TIMEOUT)
    expect(page.locator("#service-status")).to_have_text("DELETED")
    assert console.agent.get("web-console").status_code == 404


def test_a_forged_csrf_token_and_sign_out(console) -> None:
    page = console.page
    console.sign_in()
    page.get_by_role("link", name="Auto scaling").click()
    console.shoot("autoscaling")
    page.get_by_label("Name").fill("burst")
    page.get_by_label("Maximum instances").fill("3")
    page.locator('form.form input[name="csrf"]').evaluate("e => e.value = 'forged'")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#refusal")).to_have_text(
        "The form's security token (CSRF) is missing or wrong: reload the page and submit again"
    )
    page.get_by_role("link", name="Auto scaling").click()
    assert "burst" not in page.locator("table").inner_text()  # nothing was made
    page.get_by_label("Name").fill("burst")
    page.get_by_label("Maximum instances").fill("3")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("table")).to_contain_text("burst")

    page.get_by_role("link", name="Connections").click()
    page.get_by_label("Connection name").fill("gh-console")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("table")).to_contain_text("PENDING_HANDSHAKE")
    console.shoot("connections")
    page.get_by_role("link", name="Notifications").click()
    page.get_by_label("URL").fill("http://127.0.0.1:9/hook")  # loopback: refused by outbound
    page.get_by_label("Event pattern (EventBridge JSON)").fill('{"source": ["aws.apprunner"]}')
    page.get_by_role("button", name="Add").click()
    expect(page.locator("#form-error")).to_be_visible()
    expect(page.get_by_label("URL")).to_have_value("http://127.0.0.1:9/hook")
    console.shoot("notifications")

    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Principal", exact=True).fill("root")
    page.get_by_label("Description").fill(SCRIPT)
    page.get_by_role("button", name="Create key").click()
    new_key = page.locator("#new-key-id").inner_text()
    expect(page.locator("#new-key-secret")).not_to_be_empty()
    row = page.locator("table.keys tr", has=page.get_by_text(new_key, exact=True))
    expect(row).to_contain_text(SCRIPT)
    row.get_by_role("button", name=f"Disable {new_key}").click()
    expect(row.locator(".status")).to_have_text("Inactive")
    console.shoot("keys")

    page.get_by_role("link", name="Audit trail").click()
    page.get_by_label("Action").fill("CreateAutoScaling")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.audit tbody tr").first).to_contain_text("root")
    console.shoot("audit")

    cookies = console.context.cookies()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    console.context.add_cookies(cookies)  # the old cookie, replayed
    page.goto(console.url("/services"))
    expect(page.locator("#signin-error")).to_have_text("Your session ended: sign in again")


def test_a_console_link_signs_in_once(console) -> None:
    done = console.agent.cli("console-link")
    url = done.stdout.strip()
    assert url.startswith(console.agent.endpoint + "/console/link/")
    console.page.goto(url)
    expect(console.page.get_by_role("heading", name="Services")).to_be_visible()
    other = console.context.browser.new_context()
    try:
        again = other.new_page()
        again.goto(url)
        expect(again.locator("#signin-error")).to_have_text(
            "This sign-in link was used already or has expired"
        )
    finally:
        other.close()


def test_a_read_only_principal_is_refused_as_the_api_refuses_it(console) -> None:
    page = console.page
    console.sign_in()
    page.get_by_role("link", name="Keys").click()
    page.get_by_label("Principal name").fill("viewer")
    page.get_by_role("button", name="Create principal").click()
    page.get_by_label("Attach to principal").select_option("viewer")
    page.get_by_label("Policy name").fill("own")
    page.get_by_label("Policy document (JSON, optional)").fill('{"Statement": [')
    page.get_by_role("button", name="Attach policy").click()
    expect(page.locator("#policy_document-error")).to_contain_text("not valid JSON")
    page.get_by_label("Policy name").fill("read-only")
    page.get_by_label("Policy document (JSON, optional)").fill("")
    page.get_by_role("button", name="Attach policy").click()
    viewer = page.locator('tr[data-principal="viewer"]')
    expect(viewer).to_contain_text("read-only")
    page.get_by_label("Attach to principal").select_option("viewer")
    page.get_by_label("Policy name").fill("administrator")
    page.get_by_role("button", name="Attach policy").click()
    expect(viewer).to_contain_text("administrator")
    viewer.get_by_role("button", name="Detach administrator from viewer").click()
    expect(viewer).not_to_contain_text("administrator")
    expect(viewer).to_contain_text("read-only")
    page.get_by_label("Principal", exact=True).fill("viewer")
    page.get_by_role("button", name="Create key").click()
    key_id = page.locator("#new-key-id").inner_text()
    secret = page.locator("#new-key-secret").inner_text()
    console.shoot("principals")
    page.get_by_role("button", name="Sign out").click()
    console.sign_in(key_id, secret)
    expect(page.get_by_role("heading", name="Services")).to_be_visible()
    expect(page.locator(".who")).to_have_text("viewer")
    page.get_by_role("link", name="Auto scaling").click()
    page.get_by_label("Name").fill("viewer-made")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#form-error")).to_contain_text(
        "user/viewer is not authorized to perform: apprunner:CreateAutoScalingConfiguration"
    )
