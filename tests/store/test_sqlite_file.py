"""A SQLite file deleted or replaced while the site runs: noticed, said loudly, reconnected."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

import reqrunner
from reqrunner.errors import StoreError


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def test_a_deleted_file_fails_loudly_once_then_the_jobs_go_to_the_new_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "jobs.sqlite3"
    queue = reqrunner.JobQueue(f"sqlite:///{path}")
    ran: list[int] = []

    @queue.job(name="count")
    def count(n: int) -> None:
        ran.append(n)

    count.dispatch(1)
    _remove(path)
    with pytest.raises(StoreError, match="deleted or replaced"):
        count.dispatch(2)
    assert any(
        "deleted or replaced" in r.message for r in caplog.records if r.levelno >= logging.ERROR
    )

    count.dispatch(3)
    assert path.exists()
    assert queue.run().ran == 1
    assert ran == [3]
    queue.close()


def test_a_replaced_file_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    queue = reqrunner.JobQueue(f"sqlite:///{path}")
    queue.dispatch("elsewhere.job")
    assert queue.stats().waiting == 1
    # A backup restored over it: another file, with reqrunner's tables and no jobs.
    other = tmp_path / "restored.sqlite3"
    restored = reqrunner.JobQueue(f"sqlite:///{other}")
    assert restored.stats().waiting == 0
    restored.close()
    _remove(path)
    os.replace(other, path)
    with pytest.raises(StoreError, match="deleted or replaced"):
        queue.stats()
    assert queue.stats().waiting == 0
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT COUNT(*) FROM reqrunner_jobs").fetchone() == (0,)
    queue.close()
