"""The bounded runner: limits, batches, leases and what a run reports."""

from __future__ import annotations

import time

import pytest

import reqrunner
from reqrunner import JobState, Limits
from reqrunner import memory as memory_mod
from reqrunner.runner import backoff_delay
from reqrunner.store.operations import Ack
from tests import catalogue
from tests.catalogue import CALLS


@pytest.fixture(autouse=True)
def _clean_calls() -> None:
    CALLS.clear()
    catalogue.HOARD.clear()


def test_max_jobs_stops_the_run(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    jobs.add.dispatch_many([[i, i] for i in range(5)])
    report = queue.run(max_jobs=2)
    assert (report.ran, report.stopped_by) == (2, "max_jobs")
    # jobs claimed in the batch but not started went back at once, their attempt not counted
    assert queue.count_jobs(state="reserved") == 0
    assert {j.attempts for j in queue.list_jobs()} == {0}
    assert queue.run(max_jobs=30).ran == 3


def test_max_time_stops_when_time_is_up(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    jobs.sleeps.dispatch_many([[0.6], [0.6]])
    report = queue.run(max_time=0.5)
    assert (report.ran, report.stopped_by) == (1, "max_time")
    assert report.elapsed >= 0.6


def test_max_time_refuses_a_job_not_expected_to_fit(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    jobs.sleeps.dispatch_many([[0.3]] * 4)
    # after one 0.3 s job: 0.3 elapsed + 3 × 0.3 mean = 1.2 > 1.0, so no second job,
    # although only 0.3 of the 1.0 seconds are used
    report = queue.run(max_time=1.0)
    assert (report.ran, report.stopped_by) == (1, "max_time")
    assert report.elapsed < 0.8
    assert queue.count_jobs(state="waiting") == 3


def test_max_memory_stops_the_run(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    jobs.allocates.dispatch_many([[64]] * 3)
    cap = memory_mod.rss() + 32 * 1024 * 1024
    report = queue.run(max_memory=f"{cap // (1024 * 1024)}M")
    assert (report.ran, report.stopped_by) == (1, "max_memory")
    assert queue.count_jobs() == 2


def test_max_memory_as_a_percentage_of_the_effective_limit(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    jobs.noop.dispatch()
    limit = memory_mod.effective_limit()
    assert 0 < limit <= memory_mod.psutil.virtual_memory().total
    tiny = max(0.001, memory_mod.rss() / limit * 100 / 2)  # half of what we already use
    report = queue.run(max_memory=tiny)
    assert (report.ran, report.stopped_by) == (0, "max_memory")
    assert queue.run(max_memory=100).stopped_by == "empty"


def test_should_stop_is_asked_between_jobs(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    jobs.add.dispatch_many([[i, i] for i in range(4)])
    report = queue.run(should_stop=lambda: len(CALLS) >= 2)
    assert (report.ran, report.stopped_by) == (2, "stopped")
    assert queue.count_jobs(state="waiting") == 2


def test_limits_value_and_keywords(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    jobs.noop.dispatch_many([[]] * 3)
    assert queue.run(Limits(max_jobs=1)).ran == 1
    with pytest.raises(TypeError, match="either"):
        queue.run(Limits(), max_jobs=3)
    assert queue.run(Limits(max_jobs=None, max_time=None, max_memory=None)).ran == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_jobs": 0}, "at least 1"),
        ({"max_jobs": -3}, "at least 1"),
        ({"max_time": 0}, "more than 0"),
        ({"max_time": -1.5}, "more than 0"),
        ({"max_memory": 0}, "above 0"),
        ({"max_memory": 101}, "at most 100"),
        ({"max_memory": "12Q"}, "not understood"),
        ({"max_memory": "10K"}, "at least 1M"),
        ({"max_memory": "abc%"}, "not understood"),
    ],
)
def test_bad_limits_say_what_is_allowed(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Limits(**kwargs)  # type: ignore[arg-type]


def test_limit_forms() -> None:
    assert Limits(max_memory="128M").memory_bytes == 128 * 1024**2
    assert Limits(max_memory="1.5G").memory_bytes == int(1.5 * 1024**3)
    assert Limits(max_memory="512MB").memory_bytes == 512 * 1024**2
    assert Limits(max_memory="80%").memory_percent == 80.0
    assert Limits(max_memory=50).memory_percent == 50.0
    assert Limits(max_jobs=30, max_time=30.0, max_memory=80) == reqrunner.DEFAULT_LIMITS
    assert "max_jobs=30" in repr(reqrunner.DEFAULT_LIMITS)
    with pytest.raises(TypeError):
        Limits(max_jobs=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Limits(max_memory=True)


def test_backoff_doubles_with_jitter() -> None:
    for attempt, base in [(1, 5), (2, 10), (3, 20)]:
        delays = [backoff_delay(5, attempt) for _ in range(200)]
        assert base * 0.75 <= min(delays) < max(delays) <= base * 1.25
    assert backoff_delay(5, 100) == pytest.approx(24 * 3600, rel=0.3)


def test_expired_lease_is_recovered_as_interrupted(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    job_id = jobs.add.dispatch(1, 2)
    # A runner that claims and then vanishes (no outcome, no heartbeat).
    claimed = queue.store.cycle([], claim=1).claimed
    assert [j.id for j in claimed] == [job_id]
    assert queue.run().ran == 0  # the lease (ttr 300 s) still holds
    _expire_leases(queue)
    queue.store._last_recover = 0.0
    report = queue.run()
    assert (report.interrupted, report.ran, report.succeeded) == (1, 1, 1)
    assert CALLS == [("add", 1, 2)]


def test_interrupted_on_the_last_attempt_fails_the_job(queue: reqrunner.JobQueue) -> None:
    @queue.job(name="once", attempts=1)
    def once() -> None: ...

    job_id = once.dispatch()
    queue.store.cycle([], claim=1)
    _expire_leases(queue)
    queue.store._last_recover = 0.0
    assert queue.run().interrupted == 1
    info = queue.get(job_id)
    assert info is not None and info.state is JobState.FAILED and info.error is not None
    assert info.error.type == "reqrunner.JobInterrupted"
    assert [h["outcome"] for h in info.history] == ["interrupted"]


def test_a_runner_that_lost_its_lease_changes_nothing(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    job_id = jobs.add.dispatch(1, 1)
    stale = queue.store.cycle([], claim=1).claimed[0]
    _expire_leases(queue)
    queue.store._last_recover = 0.0
    fresh = queue.store.cycle([], claim=1)
    assert fresh.interrupted == 1 and fresh.claimed[0].token != stale.token
    result = queue.store.cycle([Ack(stale.id, stale.token, "done")])
    assert result.lost == 1
    info = queue.get(job_id)
    assert info is not None and info.state is JobState.RESERVED and info.attempts == 2


def test_interrupt_signal_puts_the_job_back(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    job_id = jobs.interrupts.dispatch()
    jobs.noop.dispatch()
    with pytest.raises(KeyboardInterrupt):
        queue.run()
    info = queue.get(job_id)
    assert info is not None and info.state is JobState.WAITING and not info.delayed
    assert info.history[-1]["outcome"] == "interrupted"
    assert info.error is not None and info.error.type == "reqrunner.JobInterrupted"
    assert "stopped (KeyboardInterrupt)" in info.error.message
    assert queue.count_jobs(state="reserved") == 0


def test_fast_jobs_are_claimed_in_batches(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    jobs.noop.dispatch_many([[]] * 300)
    cycles = 0
    real_cycle = queue.store.cycle

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal cycles
        cycles += 1
        return real_cycle(*args, **kwargs)  # type: ignore[arg-type]

    queue.store.cycle = counting  # type: ignore[method-assign]
    report = queue.run(Limits(max_jobs=None, max_time=None))
    assert report.ran == 300
    assert cycles <= 12  # 1 + 100 + 100 + 99 …, never one transaction per job


def _expire_leases(queue: reqrunner.JobQueue) -> None:
    with queue.store.db.write() as cur:
        cur.execute("UPDATE reqrunner_jobs SET reserved_until = 0 WHERE state = 'reserved'")


def test_one_log_line_per_job_start_success_and_failure(
    queue: reqrunner.JobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = catalogue.register(queue)
    ok = jobs.add.dispatch(1, 1)
    bad = jobs.always_fails.dispatch("nope")
    with caplog.at_level("INFO", logger="reqrunner"):
        queue.run()
    lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert ("reqrunner.runner", "INFO", f"job {ok} add started (attempt 1/3)") in lines
    assert any(
        m.startswith(f"job {ok} add succeeded in ") and m.endswith(" ms") for _n, _l, m in lines
    )
    assert any(
        lvl == "WARNING"
        and m.startswith(f"job {bad} always_fails failed after ")
        and "retry in 0 s: ValueError: nope" in m
        for _n, lvl, m in lines
    )
    assert any(
        lvl == "ERROR" and f"job {bad} always_fails failed for good" in m for _n, lvl, m in lines
    )


def test_outcomes_are_counted_although_finished_jobs_are_deleted(
    queue: reqrunner.JobQueue,
) -> None:
    jobs = catalogue.register(queue)
    jobs.add.dispatch_many([[i, i] for i in range(3)])
    jobs.always_fails.dispatch()
    queue.run()
    since = time.time() - 3600
    assert queue.count_finished(since) == {"done": 3, "retry": 1, "failed": 1, "interrupted": 0}
    # written to the database at the end of the run: another process sees them too
    other = reqrunner.JobQueue(queue.engine)
    assert other.count_finished(since) == {"done": 3, "retry": 1, "failed": 1, "interrupted": 0}
    jobs.add.dispatch(0, 0)
    queue.run()
    assert other.count_finished(since)["done"] == 4
    assert other.count_finished(time.time() + 600)["done"] == 0
