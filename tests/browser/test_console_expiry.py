"""A console session ends at ``console_session_ttl``: the next page says so and signs
back in to where the person was going. Signed in with the keyboard alone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e
TTL = 3
AGENT_SETTINGS = {"console_session_ttl": TTL}


def test_an_expired_session_says_so_and_signing_in_again_goes_on(console) -> None:
    page = console.page
    key_id, secret = console.agent.credentials()
    page.goto(console.url("/signin"))
    expect(page.get_by_label("Access key id")).to_be_focused()
    page.keyboard.type(key_id)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Secret access key")).to_be_focused()
    page.keyboard.type(secret)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Services")).to_be_visible()

    page.wait_for_timeout((TTL + 1) * 1000)  # the session's life, passed
    page.get_by_role("link", name="Audit trail").click()
    expect(page.locator("#signin-error")).to_have_text("Your session expired: sign in again")
    page.get_by_label("Access key id").fill(key_id)
    page.get_by_label("Secret access key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()
