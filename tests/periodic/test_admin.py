"""The admin's overview shows the schedules and the triggers, and warns when runs are too rare;
a browser sees the schedules on the overview."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

import reqrunner
from reqrunner.web.admin import BasicAuth
from reqrunner.web.wsgi import WSGIMiddleware
from tests.admin.conftest import hook, hooks
from tests.live import BIN, ROOT, free_port, started

ADMIN = "/_reqrunner/admin"
LOGIN = ("admin", "periodic pass")


def _page(environ: object, start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/html")])  # type: ignore[operator]
    return [b"<html><body>site</body></html>"]


def _client(queue: reqrunner.JobQueue) -> httpx.Client:
    app = WSGIMiddleware(_page, queue, admin=BasicAuth(*LOGIN), mode="sync", run_rate=0)
    return httpx.Client(
        transport=httpx.WSGITransport(app=app),
        base_url="http://testserver",
        auth=httpx.BasicAuth(*LOGIN),
    )


def test_the_overview_lists_each_schedule_and_the_triggers(sqlite_url: str) -> None:
    queue = reqrunner.JobQueue(sqlite_url, keep_done=True)

    @queue.periodic("30 3 * * *", tz="Europe/Berlin", name="nightly-digest")
    def nightly() -> None: ...

    @queue.periodic(every=1, name="every-second")
    def every_second() -> None: ...

    client = _client(queue)
    html = client.get(ADMIN).text
    names = [name for name, _ in hooks(html, "data-schedule")]
    assert names == ["every-second", "nightly-digest"]
    rows = dict(hooks(html, "data-schedule"))
    assert "30 3 * * * (Europe/Berlin)" in rows["nightly-digest"]
    assert "first seen; no slot yet" in rows["nightly-digest"]
    assert "every 1 s" in rows["every-second"]
    time.sleep(1.1)
    queue.run(via="cli-run")
    html = client.get(ADMIN).text
    rows = dict(hooks(html, "data-schedule"))
    assert "dispatched; job #1 done" in rows["every-second"]
    assert [via for via, _ in hooks(html, "data-trigger")] == ["cli-run"]
    assert hooks(html, "data-trigger-warning") == []


def test_the_overview_warns_when_runs_are_too_rare_and_gives_the_tick_url(
    sqlite_url: str,
) -> None:
    queue = reqrunner.JobQueue(sqlite_url)

    @queue.periodic("*/5 * * * *", name="five-minutely")
    def five() -> None: ...

    queue.run(via="tick")
    record = json.loads(queue.get_meta("reqrunner.trigger.tick") or "{}")
    record["at"] -= 3 * 3600
    queue.set_meta("reqrunner.trigger.tick", json.dumps(record))
    html = _client(queue).get(ADMIN).text
    (warning,) = hooks(html, "data-trigger-warning")
    assert "3.0 h ago" in warning[1] and "every 5 min" in warning[1]
    tick = hook(html, "data-periodic-tick-url")
    assert tick.startswith("http://testserver/_reqrunner/tick?token=")


def test_no_section_without_schedules(sqlite_url: str) -> None:
    html = _client(reqrunner.JobQueue(sqlite_url)).get(ADMIN).text
    assert hooks(html, "data-periodic") == []


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    port = free_port()
    command = [
        str(BIN / "uvicorn"), "--factory", "tests.periodic.site_app:asgi_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT), "REQRUNNER_DATABASE_URL": db}
    with started(command, port=port, log=tmp_path / "uvicorn.log", env=env) as running:
        yield running.url, db


def test_a_browser_sees_the_schedules_on_the_overview(
    server: tuple[str, str], browser: Browser
) -> None:
    base, _ = server
    context = browser.new_context(
        http_credentials={"username": LOGIN[0], "password": LOGIN[1]},
        viewport={"width": 1280, "height": 900},
    )
    page = context.new_page()
    page.goto(base + "/")  # a page view: the every-second schedule is first seen
    time.sleep(1.2)
    page.goto(base + "/")  # and now fired by a page view
    page.goto(base + ADMIN)
    section = page.locator("[data-periodic]")
    expect(section.get_by_role("heading", name="Periodic jobs")).to_be_visible()
    nightly = page.locator('[data-schedule="nightly-digest"]')
    expect(nightly).to_contain_text("30 3 * * * (Europe/Berlin)")
    second = page.locator('[data-schedule="every-second"]')
    expect(second).to_contain_text("every 1 s")
    expect(second.locator("[data-outcome]")).to_contain_text("dispatched")
    expect(page.locator('[data-trigger="sync"]')).to_be_visible()
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    page.screenshot(path=ROOT / "test-artifacts" / "admin-periodic.png", full_page=True)
    context.close()
