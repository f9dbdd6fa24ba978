"""The demo's jobs move to the console script unchanged, as docs/quickstart.md says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.live import BIN, ROOT, free_port, started


def test_reqrunner_run_drains_the_demo_queue(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    command = [sys.executable, "-m", "demo_app", "--port", str(port), "--data", str(data)]
    with started(command, port=port, log=tmp_path / "demo.log") as demo:
        # The form's redirect is not an HTML page (Starlette's has no body): nothing runs yet.
        saved = httpx.post(demo.url + "/edit/Template:Body", data={"source": "From cron."})
        assert saved.status_code == 303

        worker = subprocess.run(
            [str(BIN / "reqrunner"), "run", "--app", "demo_app.jobs:queue", "--max-time", "30"],
            cwd=ROOT,
            env={**os.environ, "DEMO_DATA": str(data), "DEMO_JOB_DELAY": "0"},
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert worker.returncode == 0, worker.stderr
        activity = httpx.get(demo.url + "/activity").text
        assert 'id="count-done">15<' in activity  # 12 refreshes, the index, 2 emails
        assert 'id="count-failed">0<' in activity

        assert len(list((data / "outbox").glob("*.eml"))) == 2
        assert "From cron." in httpx.get(demo.url + "/wiki/Mars").text
