"""The README's first line, exactly: ``make demo`` brings the demo wiki up."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.live import ROOT, free_port


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_serves_the_wiki(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme.split("\n\n")[1], "the README no longer starts with make demo"
    port = free_port()
    log = tmp_path / "make-demo.log"
    args = f"DEMO_ARGS=--port {port} --data {tmp_path / 'data'}"
    with log.open("wb") as out:
        # make stays the parent of the server: a session of its own lets the test stop both.
        make = subprocess.Popen(
            ["make", "demo", args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120  # a machine without .venv builds it first
        while True:
            assert make.poll() is None, log.read_text()
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert page.status_code == 200
        assert "Welcome to the demo wiki" in page.text
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(20)
