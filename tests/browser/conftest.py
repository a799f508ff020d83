"""Fixtures of the browser tests: one server per session, one Chromium per module, a fresh
browser context per test. Debian's chromium is driven through Playwright (`executable_path`:
nothing is downloaded); every request a page makes must stay on the server, and any CSP
violation or uncaught script error fails the test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    expect,
    sync_playwright,
)

from tests.browser.site import Site, serve
from tests.support_ops import ROOT

CHROMIUM = Path(os.environ.get("TENANTGATE_TEST_CHROMIUM", "/usr/bin/chromium"))
# Playwright gives every launch a fresh, temporary user-data-dir of its own.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "var" / "screenshots"
# `TENANTGATE_TEST_DOCS_SCREENSHOT=1 make test` also refreshes docs/console.png.
DOCS_SCREENSHOT = ROOT / "docs" / "console.png"
# Generous for a 2-core machine running the rest of the suite beside; a failure waits this long.
TIMEOUT_MS = 10_000


expect.set_options(timeout=TIMEOUT_MS)
# Every test module here sets `pytestmark = BROWSER_GROUP`: all on one xdist worker, so they
# share one server (a marker added by a collection hook comes too late for xdist's scheduler).
BROWSER_GROUP = pytest.mark.xdist_group("browser")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with serve(tmp_path_factory.mktemp("site")) as started:
        yield started


# Per module, not per session: while Playwright's sync API runs, its event loop counts as
# running in this thread, and the async tests that may follow on this worker need the thread.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"the browser tests drive Debian's Chromium at {CHROMIUM} and it is missing: "
            "`apt-get install -y chromium` (.ci/run installs it), or set TENANTGATE_TEST_CHROMIUM"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS, timeout=30_000
        )
        yield launched
        launched.close()


@dataclass
class Visit:
    """A page in a fresh browser context, with what it requested and what went wrong in it."""

    page: Page
    origin: str
    requests: list[Request] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [request.url for request in self.requests]

    def paths(self) -> list[str]:
        """Method and path (no query) of every request the page sent to the server."""
        return [
            f"{r.method} {r.url.removeprefix(self.origin).split('?')[0]}" for r in self.requests
        ]

    def bearer_tokens(self) -> list[str]:
        """The access tokens the page sent, oldest first, without repeats."""
        found: list[str] = []
        for request in self.requests:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token and token not in found and "." in token:
                found.append(token)
        return found

    def shot(self, name: str, *, full_page: bool = True, of: Locator | None = None) -> Path:
        """A screenshot in var/screenshots/: the whole page, the viewport, or one element."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if of is not None:
            of.screenshot(path=path)
        else:
            self.page.screenshot(path=path, full_page=full_page)
        return path

    def shot_for_docs(self) -> None:
        """docs/console.png (the README shows it), when asked: the picture changes every run."""
        if os.environ.get("TENANTGATE_TEST_DOCS_SCREENSHOT") == "1":
            self.page.screenshot(path=DOCS_SCREENSHOT)

    def foreign_requests(self) -> list[str]:
        return [
            url for url in self.urls if not url.startswith((self.origin + "/", "blob:", "data:"))
        ]


def _console(visit: Visit, message: ConsoleMessage) -> None:
    text = message.text
    if message.type == "error" and ("Content Security Policy" in text or "Trusted Type" in text):
        visit.problems.append(text)


@pytest.fixture
def visit(browser: Browser, site: Site) -> Iterator[Visit]:
    context = browser.new_context(
        base_url=site.url, viewport={"width": 1360, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    current = Visit(page, site.url)

    def record(request: Request) -> None:  # a function: Playwright cannot call a bound builtin
        current.requests.append(request)

    page.on("request", record)
    page.on("console", lambda message: _console(current, message))
    page.on("pageerror", lambda error: current.problems.append(f"uncaught: {error}"))
    try:
        yield current
    finally:
        context.close()
    assert current.problems == [], "the page broke its CSP or threw"
    assert current.foreign_requests() == [], "a request left the server"
