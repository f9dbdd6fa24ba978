"""Results of finished jobs: return values and errors kept for ``result_ttl`` on every database,
also when finished jobs themselves are deleted, and bounded by their expiry."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

import reqrunner
from reqrunner import JobState
from reqrunner.store.results import RESULTS


def _kept_rows(queue: reqrunner.JobQueue) -> int:
    with queue.store.db.read() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {RESULTS}")
        return int(cur.fetchone()[0])


def test_a_return_value_outlives_the_deleted_job(queue: reqrunner.JobQueue) -> None:
    @queue.job(result_ttl=timedelta(hours=1))
    def thumbnails(photo: int) -> dict[str, Any]:
        return {"photo": photo, "sizes": [64, 256], "big": "x" * 100_000}

    @queue.job
    def nothing_kept() -> int:
        return 7

    job_id = thumbnails.dispatch(5)
    other = nothing_kept.dispatch()
    assert queue.get(job_id).result_until is None  # type: ignore[union-attr]
    assert queue.run().succeeded == 2
    info = queue.get(job_id)
    assert info is not None and info.state is JobState.DONE
    # A value far over MySQL's 64 KB TEXT comes back whole.
    assert info.result == {"photo": 5, "sizes": [64, 256], "big": "x" * 100_000}
    assert info.args == (5,) and info.name == thumbnails.name and info.attempts == 1
    assert info.started_at is not None and info.finished_at is not None
    assert info.result_until is not None
    assert info.result_until.timestamp() == pytest.approx(time.time() + 3600, abs=60)
    # The job's own row is gone (keep_done is off); without result_ttl nothing is left.
    assert queue.stats().total == 0
    assert queue.get(other) is None


def test_a_failure_is_kept_with_its_error(queue: reqrunner.JobQueue) -> None:
    @queue.job(attempts=1, result_ttl=600)
    def broken() -> None:
        raise LookupError("no such photo")

    job_id = broken.dispatch()
    queue.run()
    info = queue.get(job_id)
    assert info is not None and info.state is JobState.FAILED
    assert info.error is not None and info.error.type == "LookupError"
    assert "no such photo" in info.error.traceback
    assert info.result is None and info.result_until is not None
    # Deleting the failed job deletes its result: it is not found again.
    queue.delete(job_id)
    assert queue.get(job_id) is None


def test_the_queue_default_applies_and_a_non_json_value_fails(db_url: str) -> None:
    queue = reqrunner.JobQueue(db_url, result_ttl=60)
    try:

        @queue.job(attempts=1)
        def none() -> None:
            return None

        @queue.job(attempts=1)
        def opaque() -> object:
            return object()

        a, b = none.dispatch(), opaque.dispatch()
        queue.run()
        first, second = queue.get(a), queue.get(b)
        assert first is not None and first.state is JobState.DONE
        assert first.result is None and first.result_until is not None
        assert second is not None and second.state is JobState.FAILED
        assert second.error is not None and second.error.type == "TypeError"
        assert "JSON serializable" in second.error.message
    finally:
        queue.close()


def test_expired_results_are_not_found_and_prune_removes_them(queue: reqrunner.JobQueue) -> None:
    @queue.job(result_ttl=0.2)
    def quick() -> str:
        return "ok"

    ids = [quick.dispatch() for _ in range(3)]
    queue.run()
    assert queue.get(ids[0]) is not None and _kept_rows(queue) == 3
    time.sleep(0.3)
    assert queue.get(ids[0]) is None
    queue.prune()
    assert _kept_rows(queue) == 0


def test_async_jobs_return_values_too(queue: reqrunner.JobQueue) -> None:
    @queue.job(result_ttl=60)
    async def fetch(n: int) -> list[int]:
        return list(range(n))

    job_id = fetch.dispatch(3)
    queue.run()
    assert queue.get(job_id).result == [0, 1, 2]  # type: ignore[union-attr]


def test_result_ttl_is_checked() -> None:
    with pytest.raises(ValueError, match="result_ttl"):
        reqrunner.JobQueue("sqlite://", result_ttl=-1)
