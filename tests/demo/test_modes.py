"""The demo's settings switch the run mode while it runs: ``sync`` and ``async`` through plain
HTTP (the browser test covers ``js`` and ``auto``)."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import free_port, started

# How the activity page says the last run was started: after a page's response in the server's
# own process, or by the signed POST to {path}/run that async mode sends the site itself.
EXPECTED_VIA = {"sync": "sync", "async": "async"}


def _count(page: str, state: str) -> int:
    found = re.search(rf'id="count-{state}">(\d+)<', page)
    assert found, page
    return int(found[1])


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_settings_mode_runs_the_template_refreshes(tmp_path: Path, server: str, mode: str) -> None:
    port = free_port()
    command = [
        sys.executable, "-m", "demo_app", "--port", str(port), "--data", str(tmp_path / "data"),
        "--job-delay", "0",
    ]  # fmt: skip
    if server == "wsgi":
        command.append("--wsgi")
    with (
        started(command, port=port, log=tmp_path / "demo.log") as demo,
        httpx.Client(base_url=demo.url, timeout=10) as client,
    ):
        assert f'id="mode">{mode}<' in client.get("/settings", params={"mode": mode}).text
        saved = client.post("/edit/Template:Body", data={"source": "Now Tanganyika."})
        assert saved.status_code == 303

        page = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            client.get("/wiki/Mars")
            page = client.get("/activity").text
            if _count(page, "done") == 15 and _count(page, "reserved") == 0:
                break
            time.sleep(0.2)
        assert _count(page, "done") == 15, demo.output()  # 12 refreshes, the index, 2 emails
        assert _count(page, "failed") == 0
        assert f'data-via="{EXPECTED_VIA[mode]}"' in page
        assert "Tanganyika" in client.get("/wiki/Venus").text
