"""``js`` mode in Debian's headless chromium, driven by Playwright, on uvicorn, gunicorn, waitress.

The page's own request runs nothing; the browser runs the injected script, which POSTs the
signed token to ``{path}/run``, whose ``202`` is followed by the run. JSON responses and the
page's own fetch() calls get no script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

import reqrunner

from .servers import ROOT, free_port, serve, stop, wait_for
from .sites import read_stamps


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
            assert json.loads(raw)["via"] == "js"
            assert queue.stats().waiting == 0
        finally:
            queue.close()


CGI_SCRIPT = """#!{python}
import sys
sys.path.insert(0, {root!r})
from wsgiref.handlers import CGIHandler
from tests.middleware.sites import wsgi_app
CGIHandler().run(wsgi_app())
"""


# Python's own CGI server. Run as root it would switch each CGI process to "nobody", who may
# not read this venv's interpreter; these tests run as whoever started them instead.
CGI_SERVER = """
import http.server, os, sys
os.setuid = lambda uid: None
http.server.test(http.server.CGIHTTPRequestHandler, port=int(sys.argv[1]), bind="127.0.0.1")
"""


def test_auto_mode_under_cgi_leaves_the_run_to_the_browser(
    browser: Browser, tmp_path: Path
) -> None:
    # Python's CGI server starts a process per request and ends the response when it exits,
    # as CGI hosts do: any run in that process would keep the visitor's page loading.
    cgi_bin = tmp_path / "cgi-bin"
    cgi_bin.mkdir()
    script = cgi_bin / "site.py"
    script.write_text(CGI_SCRIPT.format(python=sys.executable, root=str(ROOT)))
    script.chmod(0o755)
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    stamps = tmp_path / "stamps.jsonl"
    port = free_port()
    env = {**os.environ, "RR_DB": db, "RR_STAMPS": str(stamps), "RR_MODE": "auto"}
    log = (tmp_path / "cgi.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", CGI_SERVER, str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    site = f"http://127.0.0.1:{port}/cgi-bin/site.py"
    queue = reqrunner.JobQueue(db)
    try:
        wait_for(lambda: _up(f"http://127.0.0.1:{port}/"), 15, "the CGI server")
        _load(f"{site}/page")  # a first page view creates the store
        queue.dispatch("stamp", "cgi", 3.0)
        page = browser.new_page()
        try:
            page.goto(f"{site}/page", wait_until="load")
            loaded = time.time()
            assert page.locator("script[data-token]").count() == 1
            wait_for(lambda: read_stamps(stamps), 20, "the browser-started run")
        finally:
            page.close()
        # The page had loaded while the 3 s job was still running: its response did not wait
        # for the job (a run inside the CGI process would have ended before the page did).
        # Compared by order of events, not by a time margin a loaded machine can break.
        (stamp,) = read_stamps(stamps)
        assert stamp["start"] > time.time() - 30
        assert loaded < stamp["end"], (loaded, stamp)
    finally:
        queue.close()
        stop(server)
        log.close()


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _load(url: str) -> float:
    started = time.monotonic()
    httpx.get(url, timeout=30).raise_for_status()
    return time.monotonic() - started
