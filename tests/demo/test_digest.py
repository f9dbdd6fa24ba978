"""The demo wiki's nightly "recent changes" digest: a periodic job that mails the outbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.live import ROOT

# A process that first saw the schedule a minute before last night's 03:00 slot, and runs the
# queue now: the slot has come, and its digest lists the pages seeded today.
SCRIPT = """
import time
from demo_app import jobs, wiki
jobs.wiki.create()
wiki.seed()
periodic = jobs.queue.periodic_jobs
now = time.time()
slot = periodic.schedules["wiki.recent_changes_digest"].last_at_or_before(now)
periodic.clock = lambda: slot - 60
periodic.next_at()
periodic.clock = time.time
report = jobs.queue.run(max_jobs=None)
assert report.failed == 0, report
(job,) = jobs.queue.list_jobs(name="wiki.recent_changes_digest")
print(job.description)
print(job.unique_key)
print(time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(slot)))
"""


def test_the_nightly_digest_lists_the_day_s_changes_in_the_outbox(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={**os.environ, "DEMO_DATA": str(data), "DEMO_JOB_DELAY": "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    description, key, slot = done.stdout.splitlines()
    assert description.startswith("Recent changes digest: ")
    assert key == f"periodic slot {slot}"  # the slot stays on the job
    digests = [
        path.read_text()
        for path in (data / "outbox").glob("*.eml")
        if "changed in the last day" in path.read_text()
    ]
    assert len(digests) == 1
    assert "Recent changes:" in digests[0] and "/wiki/" in digests[0]
