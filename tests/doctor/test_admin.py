"""Doctor's report on the admin's overview, against a real server: checked on demand (a POST
with the CSRF token, the checks running after its response), shown with verdicts and advice,
and drawn by chromium for a screenshot under ``test-artifacts/``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

import reqrunner
from reqrunner.web.doctor import stored as stored_report
from tests.live import ROOT, free_port, wait_for

from .test_doctor import PASSWORD, check, waitress

ADMIN = "/_reqrunner/admin"
ARTIFACTS = ROOT / "test-artifacts"


def _token(client: httpx.Client, url: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(url).text)
    assert found
    return found.group(1)


def test_the_overview_checks_on_demand_and_shows_the_report(tmp_path: Path, browser: Any) -> None:
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    closed = f"http://127.0.0.1:{free_port()}"  # a self_url nobody answers: one warning
    with (
        waitress(db, tmp_path, RR_MODE="async", RR_SELF_URL=closed) as url,
        httpx.Client(auth=("admin", PASSWORD), follow_redirects=False, timeout=10) as client,
    ):
        overview = url + ADMIN
        # Without the form's token the checks are refused.
        assert client.post(overview + "/doctor", data={"csrf": "1.forged"}).status_code == 403
        response = client.post(overview + "/doctor", data={"csrf": _token(client, overview)})
        assert response.status_code == 303
        assert "done=doctor-started" in response.headers["location"]
        queue = reqrunner.JobQueue(db)
        try:
            wait_for(lambda: queue.get_meta("reqrunner.doctor.report"), 30, "doctor's report")
            stored = stored_report(queue)
        finally:
            queue.close()
        assert stored is not None
        assert check(stored.to_dict(), "run.self_request")["status"] == "warn"
        assert check(stored.to_dict(), "run.tick")["status"] == "ok"

        html = client.get(overview).text
        assert 'data-doctor="ok"' in html  # warnings, but nothing stops jobs
        assert 'data-check="run.self_request" data-status="warn"' in html
        assert 'data-check="store.writable" data-status="ok"' in html
        assert "What to do: Set self_url to an address" in html

        ARTIFACTS.mkdir(exist_ok=True)
        page = browser.new_page(
            viewport={"width": 1100, "height": 900},
            http_credentials={"username": "admin", "password": PASSWORD},
        )
        try:
            page.goto(overview)
            section = page.locator("section.doctor")
            assert section.locator("li.check").count() == len(stored.checks)
            assert section.locator("li.check.warn").count() >= 1
            section.screenshot(path=str(ARTIFACTS / "doctor-admin.png"))
        finally:
            page.close()
    assert (ARTIFACTS / "doctor-admin.png").stat().st_size > 10_000
