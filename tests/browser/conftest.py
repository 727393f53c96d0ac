"""A real browser for the tests here: Debian's Chromium (`/usr/bin/chromium`, `apt-get install chromium`)
driven by Playwright's Python package (no browser download: `executable_path`). One browser per module,
one fresh context (cookies, local storage) per test, as a person opening the page for the first time.

A failing test leaves a screenshot of every page it had open in `test-artifacts/<test name>/`
(git-ignored; `$BROWSER_ARTIFACTS` moves it). With `$BROWSER_SCREENSHOTS=DIR` the tests also save the
screenshots they take along the way (the reviewer's loop in docs/operations.md comes from there).
Everything is skipped, with the reason, where there is no Chromium or no Playwright.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", ROOT / "test-artifacts"))
VIEWPORT = {"width": 1400, "height": 900}


def _missing_browser() -> str | None:
    if shutil.which(CHROMIUM) is None:
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set $CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright not installed (pip install -e '.[dev]')"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Each phase's report on the test item, for `page` to know whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One Chromium per module, closed at its end: while Playwright's sync API runs, its event loop is
    the thread's running loop, and every later `asyncio.run` in the session (the synth HTTP engine's
    tests) would fail with "cannot be called from a running event loop"."""
    missing = _missing_browser()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request) -> Iterator:
    """A page in a fresh browser context; screenshots of every page of it kept when the test fails."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)  # a busy 2-core machine renders slowly
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
        folder.mkdir(parents=True, exist_ok=True)
        for i, opened in enumerate(context.pages):
            if not opened.is_closed():
                opened.screenshot(path=str(folder / f"page-{i}.png"), full_page=True)
                (folder / f"page-{i}.url").write_text(opened.url + "\n")
    context.close()


class Shots:
    """Screenshots a test takes on its way, saved only when `$BROWSER_SCREENSHOTS` names a folder."""

    def __init__(self, folder: str | None):
        self.folder = Path(folder) if folder else None

    def __call__(self, page, name: str, **kwargs) -> None:
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(self.folder / f"{name}.png"), **kwargs)


@pytest.fixture
def shots() -> Shots:
    return Shots(os.environ.get("BROWSER_SCREENSHOTS"))
