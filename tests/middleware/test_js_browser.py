"""``js`` mode in Debian's headless chromium, driven by Playwright, on uvicorn, gunicorn, waitress.

The page's own request runs nothing; the browser runs the injected script, which POSTs the
signed token to ``{path}/run``, whose ``202`` is followed by the run. JSON responses and the
page's own fetch() calls get no script.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

import reqrunner

from .servers import serve, wait_for
from .sites import read_stamps

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn", "waitress"])
def test_the_browser_triggers_the_run(kind: str, browser: Browser, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    stamps = tmp_path / "stamps.jsonl"
    env = {"RR_DB": db, "RR_STAMPS": str(stamps), "RR_MODE": "js"}
    with serve(kind, tmp_path, **env) as server:
        queue = reqrunner.JobQueue(db)
        try:
            for i in range(3):
                queue.dispatch("stamp", f"js{i}")
            time.sleep(1.1)  # the server's "nothing due" from start-up expires

            # Not into JSON, and not into what scripts fetch.
            assert b"<script" not in httpx.get(f"{server.url}/json").content
            ajax = httpx.get(f"{server.url}/page", headers={"X-Requested-With": "XMLHttpRequest"})
            assert b"<script" not in ajax.content
            # A plain GET of the page gets the script, and runs nothing by itself.
            assert b"/_reqrunner/trigger.js" in httpx.get(f"{server.url}/page").content
            time.sleep(0.3)
            assert queue.stats().waiting == 3

            page = browser.new_page()
            try:
                fetched: list[str] = []
                page.on(
                    "response",
                    lambda r: fetched.append(f"{r.request.method} {r.url} {r.status}"),
                )
                page.goto(f"{server.url}/page")
                # The page's own fetch() of an HTML page is Ajax: no script in what it gets.
                inner = page.evaluate("fetch('/page').then(r => r.text())")
                assert "<script" not in inner
                wait_for(lambda: len(read_stamps(stamps)) == 3, 15, "the browser-started run")
                assert f"POST {server.url}/_reqrunner/run 202" in fetched
            finally:
                page.close()
            wait_for(lambda: queue.get_meta("reqrunner.health.last_run"), 10, "the run's record")
            raw = queue.get_meta("reqrunner.health.last_run")
            assert raw is not None
            assert json.loads(raw)["via"] == "endpoint"
            assert queue.stats().waiting == 0
        finally:
            queue.close()
