"""A long-lived ``reqrunner work`` outlives its database going away for a few seconds.

The worker reaches PostgreSQL through a loopback TCP relay that the test cuts: every open
connection is dropped and new ones are refused, as when the server restarts or fails over;
then the relay is restored. Jobs dispatched while it was away (straight to the
server) must run once it is back, by the same worker process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import reqrunner
from tests.conftest import drop_tables
from tests.reliability.relay import Relay

SITE = """
import os
import reqrunner

queue = reqrunner.JobQueue()

@queue.job(name="away.note")
def note(i: int) -> None:
    with open(os.environ["AWAY_LOG"], "a") as log:
        log.write(f"{i}\\n")
"""


def _ran(log: Path) -> list[int]:
    return sorted(int(line) for line in log.read_text().split()) if log.exists() else []


def _wait_for(log: Path, expected: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while _ran(log) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return _ran(log)


def test_a_worker_outlives_its_database_going_away(postgresql_url: str, tmp_path: Path) -> None:
    drop_tables(postgresql_url)
    direct = sa.engine.make_url(postgresql_url)
    queue = reqrunner.JobQueue(postgresql_url)
    queue.stats()  # the tables exist before the worker starts
    relay = Relay((direct.host or "127.0.0.1", direct.port or 5432))
    through_relay = direct.set(port=relay.port).render_as_string(hide_password=False)

    (tmp_path / "away_site.py").write_text(SITE)
    log = tmp_path / "ran.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REQRUNNER_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]),
        REQRUNNER_DATABASE_URL=through_relay,
        AWAY_LOG=str(log),
    )
    command = [sys.executable, "-m", "reqrunner", "--app", "away_site:queue", "work"]
    output = tmp_path / "worker.log"
    with output.open("wb") as out:
        worker = subprocess.Popen(
            [*command, "--sleep", "0.2"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        # The queue in this process reaches the server directly, past the relay.
        for i in range(3):
            queue.using("away.note").dispatch(i)
        assert _wait_for(log, [0, 1, 2], 20) == [0, 1, 2], output.read_text()

        relay.cut()
        for i in range(3, 6):
            queue.using("away.note").dispatch(i)
        time.sleep(3)  # the worker meets dropped connections, then refused ones
        assert worker.poll() is None, output.read_text()
        assert _ran(log) == [0, 1, 2]

        relay.restore()
        expected = list(range(6))
        assert _wait_for(log, expected, 30) == expected, output.read_text()
        assert worker.poll() is None, output.read_text()
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            pytest.fail("the worker did not stop on SIGTERM:\n" + output.read_text())
        relay.close()
        queue.close()
    assert worker.returncode == 0, output.read_text()
    assert "job database unavailable" in output.read_text()
