"""The demo says what happens: the activity page names who started the last run and counts
jobs in good English, the settings page describes auto mode right and shows doctor's report."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import httpx
import pytest

import reqrunner
from tests.live import free_port, started


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_settings_show_doctor_and_activity_reads_right(tmp_path: Path, server: str) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "demo_app", "--port", str(port), "--data", str(tmp_path / "data"),
        "--job-delay", "0",
    ]  # fmt: skip
    if server == "wsgi":
        command.append("--wsgi")
    with (
        started(command, port=port, log=tmp_path / "demo.log") as demo,
        httpx.Client(base_url=demo.url, timeout=30) as client,
    ):
        settings = client.get("/settings", params={"mode": "async"}).text
        assert "js under CGI" in settings and "async under CGI" not in settings
        assert "Not checked yet" in settings
        checked = client.post("/settings", data={"doctor": "1"})
        assert checked.status_code == 303
        settings = client.get("/settings").text
        assert 'id="doctor" data-ok="1"' in settings, settings
        statuses = dict(re.findall(r'data-check="([a-z_.]+)" data-status="(\w+)"', settings))
        assert statuses["store.writable"] == "ok"
        assert statuses["run.self_request"] == "ok"  # async: the server reaches itself
        assert statuses["run.tick"] == "ok"
        assert "auto" not in re.search(r'data-check="run.mode"[^<]*<b>ok</b>([^<]*)', settings)[1]

        # doctor's signed POST to {path}/run and its fetch of the tick URL each started a run;
        # the page names whichever came last in words.
        page = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            page = client.get("/activity").text
            if re.search(r'data-via="(endpoint|tick|async)"', page):
                break
            time.sleep(0.2)
        last_run = re.search(r'<p id="last-run"[^>]*>(.*?)</p>', page, re.S)
        assert last_run, page
        text = last_run[1]
        assert "{path}" not in text
        assert (
            "started by a signed POST to /_reqrunner/run (reqrunner ping or doctor)" in text
            or "started by the tick URL (/_reqrunner/tick)" in text
            # a page view meanwhile, in async mode: the site's own request
            or "started by the site&#x27;s own signed POST to /_reqrunner/run" in text
        ), text
        # A run of exactly one job, as the middleware records it.
        queue = reqrunner.JobQueue(f"sqlite:///{tmp_path}/data/jobs.sqlite3")
        record = {"at": time.time(), "via": "sync", "ran": 1, "succeeded": 1, "retried": 0,
                  "failed": 0, "elapsed": 0.01, "stopped_by": "empty"}  # fmt: skip
        queue.set_meta("reqrunner.health.last_run", json.dumps(record))
        queue.close()
        one = client.get("/activity").text
        assert "started by this server after a page&#x27;s response: 1 job (1 ok" in one
