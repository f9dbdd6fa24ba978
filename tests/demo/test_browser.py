"""A visitor in headless Chromium edits a template, browses, and watches the jobs run.

Editing ``Template:Body`` queues a refresh job for each of the twelve pages that include it,
a search-index update and an email to each of the template's two watchers. The demo runs at most
five jobs per page view, so the queue drains only as the visitor keeps browsing, and only through
the mode under test: ``js`` runs come from the page's script calling ``{path}/run``, ``auto``
runs (``sync`` on uvicorn and waitress) from the server after a page's response.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.live import Running, free_port, started

USERS_OF_BODY = 12
# How the last run was started, as the activity page reports it, for each mode on these servers.
EXPECTED_VIA = {"js": "js", "auto": "sync"}


@pytest.fixture(params=["asgi", "wsgi"])
def demo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    port = free_port()
    command = [
        sys.executable, "-m", "demo_app", "--port", str(port), "--data", str(tmp_path / "data"),
        "--job-delay", "0.02", "--admin-password", "test",
    ]  # fmt: skip
    if request.param == "wsgi":
        command.append("--wsgi")
    with started(command, port=port, log=tmp_path / "demo.log") as running:
        yield running


def _refresh_states(page: Page) -> list[str]:
    rows = page.locator('tr.job[data-name="wiki.refresh_links"]')
    return [rows.nth(i).get_attribute("data-state") or "" for i in range(rows.count())]


@pytest.mark.parametrize("mode", ["js", "auto"])
def test_template_edit_refreshes_pages_as_the_visitor_browses(
    browser: Browser, demo: Running, mode: str
) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{demo.url}/settings")
        page.check(f'input[name="mode"][value="{mode}"]')
        page.click("form button")
        expect(page.locator("#mode")).to_have_text(mode)

        page.goto(f"{demo.url}/edit/Template:Body")
        page.fill("textarea[name=source]", "The '''Body''' template now says Zanzibar.")
        page.fill("input[name=editor]", "Tess")
        page.click("form button")
        expect(page.locator("#saved")).to_contain_text(f"{USERS_OF_BODY} refreshes")
        # Only a js page carries the trigger script, and only while jobs are due.
        expect(page.locator("script[data-token]")).to_have_count(1 if mode == "js" else 0)

        page.goto(f"{demo.url}/wiki/Mars")
        expect(page.locator("#content")).not_to_contain_text("Zanzibar")

        states: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for name in ("Venus", "Pluto", "Main_Page"):
                page.goto(f"{demo.url}/wiki/{name}")
            page.goto(f"{demo.url}/activity")
            states = _refresh_states(page)
            if states == ["done"] * USERS_OF_BODY:
                break
        assert states == ["done"] * USERS_OF_BODY, demo.output()
        expect(page.locator("#count-failed")).to_have_text("0")
        expect(page.locator("#last-run")).to_have_attribute("data-via", EXPECTED_VIA[mode])

        emails = page.locator("li.email")
        expect(emails).to_have_count(2)
        expect(page.locator("#outbox-count")).to_have_text("2")
        for watcher in ("alice@example.org", "bob@example.org"):
            expect(emails.filter(has_text=watcher)).to_contain_text("Template:Body")
        emails.first.locator("a").click()
        expect(page.locator("pre")).to_contain_text("Tess edited 'Template:Body'")

        page.goto(f"{demo.url}/wiki/Mars")
        expect(page.locator("#content")).to_contain_text("Zanzibar")
        expect(page.locator("#stale")).to_have_count(0)
        page.goto(f"{demo.url}/search?q=zanzibar")
        expect(page.locator("#hits")).to_contain_text(f"{USERS_OF_BODY + 1} pages match")
    finally:
        page.close()


def test_watching_activity_page_reloads_until_the_queue_is_empty(
    browser: Browser, demo: Running
) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{demo.url}/edit/Template:Body")
        page.fill("textarea[name=source]", "Watched.")
        page.click("form button")
        expect(page.locator("#saved")).to_contain_text(f"{USERS_OF_BODY} refreshes")

        # One navigation by the visitor; from here the page's own reloads are the page views.
        page.goto(f"{demo.url}/activity?watch=1")
        done = page.locator('tr.job[data-name="wiki.refresh_links"][data-state="done"]')
        expect(done).to_have_count(USERS_OF_BODY, timeout=30_000)
        expect(page.locator("#count-waiting")).to_have_text("0")
        expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(0)
    finally:
        page.close()
