"""``unique=True``: at most one unclaimed job per key, through retries, releases and recovery."""

from __future__ import annotations

import time

import pytest

import reqrunner
from reqrunner import JobState
from reqrunner.store.operations import Ack

pytestmark = pytest.mark.usefixtures("queue")


def _waiting(queue: reqrunner.JobQueue) -> list[int]:
    return [job.id for job in queue.list_jobs(state="waiting")]


def test_a_unique_job_in_backoff_keeps_its_slot(queue: reqrunner.JobQueue) -> None:
    @queue.job(name="flaky", unique=True, backoff=60)
    def flaky(key: str) -> None:
        raise RuntimeError("not yet")

    first = flaky.dispatch("k")
    assert queue.run().retried == 1
    assert _waiting(queue) == [first]
    # The job waits out its backoff: a dispatch of the same key finds it.
    assert flaky.dispatch("k") == first
    assert _waiting(queue) == [first]


def test_a_retrying_job_gives_way_to_one_dispatched_while_it_ran(
    queue: reqrunner.JobQueue,
) -> None:
    later: list[int] = []

    @queue.job(name="redispatches", unique=True, backoff=60)
    def redispatches(key: str) -> None:
        if not later:
            later.append(redispatches.dispatch(key))
        raise RuntimeError("fails after a newer copy was dispatched")

    first = redispatches.dispatch("k")
    queue.run(max_jobs=1)
    assert later and later[0] != first
    assert _waiting(queue) == [later[0]]
    assert queue.get(first) is None


def test_released_and_recovered_unique_jobs_take_their_slot_back(
    queue: reqrunner.JobQueue,
) -> None:
    @queue.job(name="held", unique=True, ttr=0.05)
    def held(key: str) -> None:
        """Never run here: claimed by hand."""

    job_id = held.dispatch("a")
    claimed = queue.store.cycle([], claim=1).claimed
    assert [job.id for job in claimed] == [job_id]
    assert held.dispatch("a") != job_id  # claimed: a new copy may wait
    queue.delete(queue.list_jobs(state="waiting")[0].id)

    # The runner gives the unstarted claim back: the slot is its again.
    queue.store.cycle([Ack(job_id, claimed[0].token, "release")])
    assert held.dispatch("a") == job_id

    # An admin's release, then a lease recovered after its holder died.
    queue.store.cycle([], claim=1)
    assert queue.release(job_id)
    assert held.dispatch("a") == job_id
    queue.store.cycle([], claim=1)
    time.sleep(0.1)
    queue.store._last_recover = 0.0
    queue.store.cycle([], claim=1, queues=["elsewhere"])  # recovers, claims nothing
    info = queue.get(job_id)
    assert info is not None and info.state is JobState.WAITING
    assert held.dispatch("a") == job_id


def test_retrying_failed_unique_jobs_leaves_one_waiting(queue: reqrunner.JobQueue) -> None:
    @queue.job(name="dies", unique=True, attempts=1)
    def dies(key: str) -> None:
        raise RuntimeError("no")

    failed = []
    for _ in range(3):
        failed.append(dies.dispatch("same"))
        queue.run()
    assert queue.count_jobs(state="failed") == 3
    assert queue.retry_failed() == 3
    assert len(_waiting(queue)) == 1
    assert dies.dispatch("same") in failed
    assert queue.count_jobs(state="waiting") == 1
