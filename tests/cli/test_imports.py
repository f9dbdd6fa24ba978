"""A cron line's ``reqrunner run`` and a ``reqrunner work`` daemon load no web stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.probe import probe

SITE = """
import reqrunner

queue = reqrunner.JobQueue()

@queue.job(name="cron.touch")
def touch(path: str) -> None:
    open(path, "a").close()
"""

# The console script's main() in a fresh interpreter, its output piped as under cron; then the
# web-stack modules it left imported.
PROBE = """
import sys
from reqrunner.cli.main import main
status = main(sys.argv[1:])
web = ("httpx", "anyio", "starlette", "rich")
print(sorted(m for m in sys.modules if m.split(".")[0] in web or m.startswith("reqrunner.web")))
sys.exit(status)
"""


@pytest.mark.parametrize("verb", [["run"], ["work", "--max-jobs", "1", "--sleep", "0.1"]])
def test_running_jobs_from_the_console_script_imports_no_web_stack(
    tmp_path: Path, verb: list[str]
) -> None:
    (tmp_path / "cron_site.py").write_text(SITE)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REQRUNNER_", "FORCE_COLOR", "TTY_COMPATIBLE"))
    }
    env.update(
        PYTHONPATH=str(tmp_path), REQRUNNER_DATABASE_URL=f"sqlite:///{tmp_path}/jobs.sqlite3"
    )
    marker = tmp_path / "touched"
    dispatch = f"import cron_site; cron_site.touch.dispatch({str(marker)!r})"
    subprocess.run([sys.executable, "-c", dispatch], env=env, check=True, timeout=60)
    loaded = probe(PROBE, ["--app", "cron_site:queue", *verb], env)
    assert marker.exists()  # the job ran
    assert loaded == []
