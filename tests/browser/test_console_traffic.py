"""Traffic on the console's Revisions tab, in a real browser against a real agent:
split requests between two revisions (a line that is not REVISION=PERCENT comes back
next to its field), send them all back to the running one, and give a revision a URL
of its own; a tag with planted script is refused and shown as text only."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from testkit.harness import image_source, wait_for, wait_status

pytestmark = pytest.mark.e2e
SCRIPT = "<script>alert('tag')</script>"


def test_a_split_between_revisions_and_a_revision_tag(console, hello_image, push_variant) -> None:
    client = console.agent.client()
    made = client.create_service(
        ServiceName="split-web",
        SourceConfiguration=image_source(hello_image),
    )["Service"]
    arn = made["ServiceArn"]

    wait_status(client, arn, "RUNNING", timeout=180)
    push_variant(hello_image, VERSION="second")
    client.start_deployment(ServiceArn=arn)
    wait_for(
        lambda: console.agent.get("split-web", "/env/VERSION").text.strip() == "second",
        180,
        "the second revision live",
    )
    wait_status(client, arn, "RUNNING", timeout=60)

    page = console.page
    console.sign_in()
    page.goto(console.url(f"/services/split-web/{made['ServiceId']}?tab=revisions"))
    revisions = page.locator("table").first.locator("tbody code").all_inner_texts()
    assert len(revisions) == 2, revisions

    page.get_by_label("Revisions and percentages").fill("not a share")
    page.get_by_role("button", name="Split traffic").click()
    expect(page.locator("#to-error")).to_be_visible()
    expect(page.get_by_label("Revisions and percentages")).to_have_value("not a share")

    page.get_by_label("Revisions and percentages").fill(f"{revisions[0]}=50\n{revisions[1]}=50")
    page.get_by_role("button", name="Split traffic").click()
    shares = page.locator("table.traffic tbody tr")
    expect(shares).to_have_count(2)
    expect(shares.first).to_contain_text("50%")

    page.get_by_label("Tag", exact=True).fill(SCRIPT)
    page.get_by_role("button", name="Tag revision").click()
    expect(page.locator("#tag-error")).to_contain_text(SCRIPT)
    page.get_by_label("Tag", exact=True).fill("beta")
    page.get_by_role("button", name="Tag revision").click()
    tagged = page.locator("table.tags tr", has=page.get_by_text("beta", exact=True))
    expect(tagged).to_contain_text("beta--split-web")
    console.shoot("traffic")

    page.get_by_role("button", name="Send all traffic to the running revision").click()
    expect(page.locator("table.traffic tbody tr")).to_have_count(1)
    expect(page.locator("table.traffic")).to_contain_text("100%")
    tagged.get_by_role("button", name="Remove tag beta").click()
    expect(page.locator("table.tags")).not_to_contain_text("beta")
