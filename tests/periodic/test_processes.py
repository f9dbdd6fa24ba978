"""Eight processes evaluating the same schedules dispatch and run each slot exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import reqrunner

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 8
SPAN = 10.0


def test_eight_processes_dispatch_and_run_each_slot_once(db_url: str, tmp_path: Path) -> None:
    queue = reqrunner.JobQueue(db_url, keep_done=True)
    try:
        _race(queue, db_url, tmp_path / "runs.log")
    finally:
        queue.close()


def _race(queue: reqrunner.JobQueue, db_url: str, log: Path) -> None:
    start = float(int(time.time()) + 3)
    end = start + SPAN
    # The schedules are first seen at START (the slot of that moment is not run): by this
    # process, so that one that starts late on a busy machine catches up from there.
    queue.periodic(every=1, name="every-second")(lambda: None)
    queue.periodic_jobs.clock = lambda: start
    assert queue.periodic_jobs.fire(start) == []
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.periodic.many", db_url, str(log), str(start), str(end)],
            cwd=ROOT,
        )
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        assert proc.wait(SPAN + 60) == 0
    lines = [line.split("|") for line in log.read_text().splitlines()]
    seconds = [slot for schedule, slot, _ in lines if schedule == "every-second"]
    # Each slot ran once...
    assert len(seconds) == len(set(seconds)), Counter(seconds).most_common(3)
    # ...and none was left out: the slots from the first to the last, one second apart.
    rows = queue.list_jobs(name="every-second", limit=1000)
    assert len(rows) == len(seconds)
    assert {info.state for info in rows} == {reqrunner.JobState.DONE}
    times = sorted(info.available_at.timestamp() for info in rows)
    assert times == [times[0] + i for i in range(len(times))]
    assert len(times) == SPAN, (start, times)
    # The processes shared the work: more than one of them ran slots.
    assert len({pid for _, _, pid in lines}) > 1
    minutes = [slot for schedule, slot, _ in lines if schedule == "every-minute"]
    assert len(minutes) == len(set(minutes)) <= 1
