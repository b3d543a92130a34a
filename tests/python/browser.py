"""Headless Chromium (Debian's package, which scripts/test installs) driven
by Playwright, for the tests of the call board and the browser relay."""

import os
import pathlib
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "target" / "browser"


@pytest.fixture(scope="session")
def chromium():
    """One browser for the session. Missing Chromium is a failure, not a
    skip: scripts/test installs it (`apt-get install chromium`)."""
    from playwright.sync_api import sync_playwright

    assert pathlib.Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: scripts/test installs Debian's chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def eventually(check, what, timeout=15.0):
    """Polls `check` until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


def wait_js(page, js, arg=None, timeout=15.0):
    """Waits until the function `js` (evaluated in the page, with `arg`)
    returns a truthy value. Polls from here rather than with Playwright's
    wait_for_function, which evaluates strings in the page and so would need
    the board's Content-Security-Policy to allow eval."""
    return eventually(lambda: page.evaluate(js, arg), js, timeout)
