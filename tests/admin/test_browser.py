"""The Queue Manager in Debian's chromium, driven by Playwright, against a real uvicorn server.

A site owner signs in, finds the failed job, reads its traceback, fixes the cause and clicks
Retry; the page follows the job until it is done. Screenshots of the overview (desktop and
phone) and of the job's page are saved under ``test-artifacts/``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.live import BIN, ROOT, free_port, started

from .conftest import ADMIN
from .site_app import PASSWORD, USER, make_queue

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """uvicorn serving tests.admin.site_app on a free port; yields (base URL, db URL, marker)."""
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    marker = tmp_path / "mail-server-fixed"
    port = free_port()
    command = [
        str(BIN / "uvicorn"), "--factory", "tests.admin.site_app:asgi_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT), "RR_DB": db, "RR_MARKER": str(marker)}
    with started(command, port=port, log=tmp_path / "uvicorn.log", env=env) as running:
        yield running.url, db, marker


def test_find_a_failed_job_read_its_traceback_and_retry_it(
    server: tuple[str, str, Path], browser: Browser
) -> None:
    base, db, marker = server
    queue = make_queue(db, str(marker))
    failed = queue.jobs["shop.flaky"].dispatch(1042, note="bob")
    queue.run(max_jobs=1)
    # Company for the screenshots: a job in progress and two scheduled for later.
    running = queue.dispatch("shop.noop")
    queue.store.cycle([], claim=1, ids=[running])
    with queue.engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE reqrunner_jobs SET reserved_until = {time.time() + 600}, progress = 0.6, "
            f"label = '120 of 200 pages' WHERE id = {running}"
        )
    queue.jobs["shop.noop"].using(delay=3600).dispatch_many([{}, {}])
    ARTIFACTS.mkdir(exist_ok=True)

    requested: list[str] = []
    dialogs: list[str] = []
    try:
        # Without credentials the browser gets the Basic challenge, nothing of the admin
        # (a page navigation would stop at chromium's own error for an unanswered prompt).
        anonymous = browser.new_context()
        refused = anonymous.request.get(base + ADMIN)
        assert refused.status == 401 and "Basic" in refused.headers["www-authenticate"]
        anonymous.close()

        context = browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 1280, "height": 900},
        )
        page = context.new_page()
        page.on("request", lambda request: requested.append(request.url))
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

        page.goto(base + ADMIN)
        expect(page.locator('[data-count="failed"]')).to_have_text("1")
        expect(page.locator('[data-count="reserved"]')).to_have_text("1")
        expect(page.get_by_text("120 of 200 pages")).to_be_visible()
        page.screenshot(path=ARTIFACTS / "admin-overview.png", full_page=True)

        # The runner reports progress; the open page follows it without a reload.
        page.evaluate("window.notReloaded = true")
        with queue.engine.begin() as conn:
            conn.exec_driver_sql(
                "UPDATE reqrunner_jobs SET progress = 0.9, label = '180 of 200 pages' "
                f"WHERE id = {running}"
            )
        expect(page.get_by_text("180 of 200 pages")).to_be_visible(timeout=10000)
        assert page.locator("progress").first.evaluate("bar => bar.value") == 0.9
        assert page.evaluate("window.notReloaded") is True

        page.locator(f'a[href="{ADMIN}/jobs/{failed}"]').first.click()
        expect(page.locator("h1")).to_contain_text(f"Job #{failed}")
        # The error message names a script; it shows as text and nothing runs.
        expect(page.locator(".error-text")).to_contain_text(
            "RuntimeError: mail server said <script>alert('bob')</script>"
        )
        traceback = page.locator("details.traceback pre")
        expect(traceback).to_be_hidden()
        page.get_by_text("Traceback", exact=True).click()
        expect(traceback).to_be_visible()
        expect(traceback).to_contain_text("Traceback (most recent call last)")
        expect(traceback).to_contain_text("in flaky")
        page.screenshot(path=ARTIFACTS / "admin-job-detail.png", full_page=True)

        marker.touch()  # the cause is fixed: the mail server answers again
        page.get_by_role("button", name="Retry").click()
        expect(page.get_by_role("status")).to_contain_text(f"Job #{failed} will run again")
        expect(page.locator("[data-state-text]")).to_have_text("done", timeout=15000)
        expect(page.locator(".facts")).to_contain_text("sent")

        page.goto(base + ADMIN)
        expect(page.locator('[data-count="failed"]')).to_have_text("0")
        expect(page.locator('[data-count="done"]')).to_have_text("1")

        phone = browser.new_context(
            http_credentials={"username": USER, "password": PASSWORD},
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
        )
        small = phone.new_page()
        small.goto(base + ADMIN)
        small.screenshot(path=ARTIFACTS / "admin-overview-phone.png", full_page=True)
        # No sideways scrolling on a phone.
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        phone.close()
        context.close()
    finally:
        queue.close()

    assert dialogs == []
    assert requested and all(url.startswith(base + "/") for url in requested), requested
