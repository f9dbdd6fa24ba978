"""The README's first command brings the demo up: started as a user would, then polled."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest

from tests.live import free_port, started, wait_for


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_python_m_demo_app_serves_the_wiki_and_its_admin(tmp_path: Path, server: str) -> None:
    port = free_port()
    data = tmp_path / "data"
    command = [sys.executable, "-m", "demo_app", "--port", str(port), "--data", str(data)]
    if server == "wsgi":
        command.append("--wsgi")
    with started(command, port=port, log=tmp_path / "demo.log") as demo:
        home = httpx.get(demo.url + "/")
        assert home.status_code == 200
        assert "Welcome to the demo wiki" in home.text
        assert "Template:Body" in home.text

        # Its files go under --data: the wiki's own database and the job store.
        assert (data / "wiki.sqlite3").is_file()
        wait_for((data / "jobs.sqlite3").is_file, 5, "the job store")

        # The admin credentials printed at start open the Queue Manager; nothing else does.
        wait_for(lambda: "password" in demo.output(), 5, "the banner")
        found = re.search(r"user '([^']+)'\s+password '([^']+)'", demo.output())
        assert found, demo.output()
        admin = demo.url + "/_reqrunner/admin"
        assert httpx.get(admin).status_code == 401
        assert httpx.get(admin, auth=(found[1], found[2] + "x")).status_code == 401
        page = httpx.get(admin, auth=(found[1], found[2]))
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
