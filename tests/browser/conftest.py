"""Browser fixtures: Debian's Chromium, driven by Playwright, against live_server."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.factories import UserFactory
from tests.journeys.conftest import welcome_series  # noqa: F401  (shared with the journeys tests)

# Playwright's sync API runs an asyncio event loop in the test's thread, and
# Django refuses ORM calls from a thread with a running loop
# (SynchronousOnlyOperation). The loop only drives the browser; the tests'
# own queries (factories, assertions) are ordinary blocking calls that never
# run inside it, so lifting Django's guard is safe here.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

# Playwright cannot download its own browsers here; Debian's package is the one
# `make test` installs (see the Makefile's chromium target).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium phones home at start-up; on a closed network those
    # connections are refused and slow the browser down.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
TIMEOUT_MS = 10_000


# One Chromium for all the browser tests. Package scope rather than session:
# Playwright's sync API keeps its event loop running in the main thread until
# it stops, and the rest of the suite should not run inside that loop.
@pytest.fixture(scope="package")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"The browser tests need Chromium at {CHROMIUM}: run `make chromium`.")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh page in its own context, so no cookie leaks from one test to the next."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def admin_page(page, live_server):
    """A page logged in to the admin as a superuser, through the real login form."""
    user = UserFactory(is_superuser=True)
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/admin/")
    return page
