"""A PostgreSQL ``reqrunner work`` and a job dispatched in the app's own transaction: the
NOTIFY rides that transaction, so the worker wakes when it commits, and not before."""

from __future__ import annotations

import time
from pathlib import Path

from reqrunner.store.database import resolve_engine
from tests.cli.app_for_cli import build_queue
from tests.cli.conftest import CLI
from tests.cli.test_worker import Track, lines, start_idle_worker, stop, wait_for

HELD = 1.5
"""Seconds the app's transaction stays open after the dispatch."""


def test_work_wakes_on_the_commit_and_not_before(
    pg_cli_url: str, processes: Track, tmp_path: Path
) -> None:
    cli, q = CLI(pg_cli_url), build_queue(pg_cli_url)
    # --sleep 30: polling cannot explain a start within a second of the commit, only NOTIFY.
    proc = start_idle_worker(cli, q, processes, "--sleep", "30")
    stamps = tmp_path / "stamps.txt"
    engine = resolve_engine(pg_cli_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
            q.jobs["cli.stamp"].using(connection=conn).dispatch(str(stamps), "in-transaction")
            time.sleep(HELD)
            assert lines(stamps) == [], "the worker ran a job its transaction had not committed"
            conn.commit()
            committed = time.time()
        wait_for(lambda: bool(lines(stamps)), timeout=10)
    finally:
        engine.dispose()
    started = float(lines(stamps)[0].split()[0])
    print(f"work started the job {(started - committed) * 1000:.1f} ms after the commit")
    assert started >= committed - 0.05
    assert started - committed < 1.0
    code, err = stop(proc)
    assert code == 0, err
    q.close()
