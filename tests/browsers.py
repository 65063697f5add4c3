"""Debian's chromium through Playwright, for the browser tests (a pytest plugin:
fixtures ``browser`` and ``context``).  Never downloads a browser: chromium is
/usr/bin/chromium (``apt-get install chromium``)."""
from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser):
    """A fresh browser profile (no cookies), French-speaking."""
    ctx = browser.new_context(locale="fr-BE")
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.set_default_navigation_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


def record_urls(page) -> list[str]:
    """Every URL this page requested or showed (redirect hops included)."""
    seen: list[str] = []
    page.on("request", lambda req: seen.append(req.url) if req.is_navigation_request() else None)
    page.on("framenavigated", lambda frame: seen.append(frame.url) if frame == page.main_frame else None)
    return seen
