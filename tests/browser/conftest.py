"""Playwright for Python driving Debian's ``chromium`` (``scripts/setup-host`` installs
it; Playwright's own browser download is not used), against real agents made by the
e2e fixtures (imported from ``tests/e2e/conftest.py``, so both suites start agents,
Caddy and the registry one way).

Fixtures:
- ``browser`` (session): headless Chromium; skips when /usr/bin/chromium is missing.
- ``console`` (per test): a fresh browser context at 1920 px on the module's agent, and
  what a person does with it (``sign_in``, ``shoot``: screenshots under
  docs/screenshots at 1920 and 360 px). Every dialog a page opens (an ``alert`` from
  planted script) is recorded and fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.harness import AgentProcess
from tests.e2e.conftest import (  # noqa: F401 - fixtures shared with the e2e suite
    agent,
    alone,
    caddy_server,
    docker_client,
    docker_host,
    hello_image,
    hello_local,
    push_hello,
    push_variant,
    registry,
)

CHROMIUM = os.environ.get("SLIPWAY_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WIDTHS = {"desktop": (1920, 1080), "phone": (360, 780)}


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}: scripts/setup-host installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Console:
    def __init__(self, process: AgentProcess, context, page) -> None:
        self.agent = process
        self.context = context
        self.page = page
        self.dialogs: list[str] = []
        page.on("dialog", self._dialog)
        page.set_default_timeout(30_000)

    def _dialog(self, dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def url(self, path: str = "") -> str:
        return f"{self.agent.endpoint}/console{path}"

    def sign_in(self, key_id: str | None = None, secret: str | None = None) -> None:
        real_id, real_secret = self.agent.credentials()
        page = self.page
        page.goto(self.url("/signin"))
        page.get_by_label("Access key id").fill(key_id or real_id)
        page.get_by_label("Secret access key").fill(secret or real_secret)
        page.get_by_role("button", name="Sign in").click()

    def shoot(self, name: str) -> None:
        """The current page at desktop and phone width, for the README."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        for label, (width, height) in WIDTHS.items():
            self.page.set_viewport_size({"width": width, "height": height})
            self.page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=False)
        self.page.set_viewport_size({"width": 1920, "height": 1080})


@pytest.fixture
def console(browser, agent: AgentProcess) -> Iterator[Console]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    held = Console(agent, context, page)
    try:
        yield held
    finally:
        context.close()
    assert held.dialogs == [], f"a page ran planted script: {held.dialogs}"
