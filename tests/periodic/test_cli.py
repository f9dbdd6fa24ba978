"""``reqrunner periodic``, ``reqrunner stats``'s trigger health, and an idle worker waking for
the next slot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import reqrunner
from tests.live import wait_for

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.periodic.site_app:queue"


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REQRUNNER_")}
    env.update(REQRUNNER_DATABASE_URL=url, PYTHONUNBUFFERED="1", **extra)
    return env


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reqrunner", "--app", APP, *args],
        cwd=ROOT,
        env=_env(url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_periodic_lists_the_schedules(sqlite_url: str) -> None:
    done = _cli(sqlite_url, "periodic")
    assert done.returncode == 0, done.stderr
    assert "nightly-digest" in done.stdout and "30 3 * * * (Europe/Berlin)" in done.stdout
    assert "every-second" in done.stdout and "every 1 s" in done.stdout
    time.sleep(1.1)
    assert _cli(sqlite_url, "run").returncode == 0  # fires the every-second slot
    done = _cli(sqlite_url, "periodic", "--json")
    assert done.returncode == 0, done.stderr
    found = {item["name"]: item for item in json.loads(done.stdout)}
    assert set(found) == {"nightly-digest", "every-second"}
    nightly = found["nightly-digest"]
    assert nightly["expression"] == "30 3 * * * (Europe/Berlin)"
    assert nightly["last_outcome"] == "started"  # first seen; its slot has not come
    next_slot = reqrunner.periodic.datetime.fromisoformat(nightly["next_slot"])
    assert next_slot.astimezone(reqrunner.periodic.ZoneInfo("Europe/Berlin")).hour == 3
    second = found["every-second"]
    assert second["last_outcome"] == "dispatched"
    assert second["last_job_state"] == "done"  # kept (keep_done=True) and ran


def test_stats_says_when_the_triggers_are_too_rare(sqlite_url: str) -> None:
    assert _cli(sqlite_url, "run").returncode == 0
    done = _cli(sqlite_url, "stats", "--json")
    data = json.loads(done.stdout)
    assert set(data["triggers"]) == {"cli-run"}
    assert data["warnings"] == []
    # Two minutes without a run: the every-second schedule is missing its slots.
    queue = reqrunner.JobQueue(sqlite_url)
    record = json.loads(queue.get_meta("reqrunner.trigger.cli-run") or "{}")
    record["at"] -= 120
    queue.set_meta("reqrunner.trigger.cli-run", json.dumps(record))
    done = _cli(sqlite_url, "stats", "--site", "https://example.org/_reqrunner")
    assert done.returncode == 0, done.stderr
    assert "cli-run" in done.stdout
    assert "Warning: The last run was 2 min ago" in done.stdout
    assert "https://example.org/_reqrunner/tick?token=" in done.stdout
    data = json.loads(_cli(sqlite_url, "stats", "--json").stdout)
    assert data["warnings"] and "slots are being missed" in data["warnings"][0]


def test_an_idle_worker_wakes_for_the_next_slot(sqlite_url: str, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    # It would look for jobs once a minute; the every-second schedule wakes it far sooner.
    proc = subprocess.Popen(
        [sys.executable, "-m", "reqrunner", "--app", APP, "work", "--sleep", "60"],
        cwd=ROOT,
        env=_env(sqlite_url, PERIODIC_LOG=str(log)),
    )
    try:
        wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 3, 15, "three slots")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    slots = [line.split("|")[1] for line in log.read_text().splitlines()]
    assert len(slots) == len(set(slots))
    queue = reqrunner.JobQueue(sqlite_url)
    assert "cli-work" in reqrunner.triggers.last_runs(queue)
