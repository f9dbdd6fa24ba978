"""The job API on SQLite, PostgreSQL and MySQL/MariaDB: dispatch, run, look, repair."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import reqrunner
from reqrunner import JobState
from tests import catalogue
from tests.catalogue import CALLS


@pytest.fixture(autouse=True)
def _clean_calls() -> None:
    CALLS.clear()


def test_dispatch_returns_ids_and_run_calls_the_function(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    first = jobs.add.dispatch(1, 2)
    second = jobs.add.dispatch(a=3, b=4)
    assert second > first
    info = queue.get(first)
    assert info is not None
    assert (info.name, info.state, info.args, info.kwargs) == ("add", JobState.WAITING, (1, 2), {})
    assert (info.attempts, info.max_attempts, info.queue, info.priority) == (0, 3, "default", 0)
    report = queue.run()
    assert (report.ran, report.succeeded, report.stopped_by) == (2, 2, "empty")
    assert CALLS == [("add", 1, 2), ("add", 3, 4)]
    # finished jobs are deleted by default
    assert queue.get(first) is None
    assert queue.stats().total == 0


def test_default_name_is_module_and_qualname(queue: reqrunner.JobQueue) -> None:
    @queue.job
    def send_email(to: str) -> None: ...

    assert (
        send_email.name
        == f"{__name__}.test_default_name_is_module_and_qualname.<locals>.send_email"
    )
    assert queue.jobs[send_email.name] is send_email
    with pytest.raises(ValueError, match="already registered"):
        queue.job(name=send_email.name)(lambda: None)


def test_calling_a_job_runs_it_here(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    jobs.add(5, 6)
    assert CALLS == [("add", 5, 6)]
    assert queue.stats().total == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "needle"),
    [
        ((object(), 1), {}, "argument 0"),
        ((), {"a": 1, "b": {"when": time}}, "argument 'b'['when']"),
        ((1, float("nan")), {}, "NaN"),
        ((1, {1: "x"}), {}, "key 1"),
        ((1, [1, {2, 3}]), {}, "argument 1[1]"),
    ],
)
def test_payload_that_json_cannot_carry_is_a_type_error_at_dispatch(
    queue: reqrunner.JobQueue, args: tuple[object, ...], kwargs: dict[str, object], needle: str
) -> None:
    jobs = catalogue.register(queue)
    with pytest.raises(TypeError) as err:
        jobs.add.dispatch(*args, **kwargs)
    assert needle in str(err.value)
    assert queue.stats().total == 0


def test_arguments_that_do_not_fit_are_refused_at_dispatch(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    with pytest.raises(TypeError, match="add"):
        jobs.add.dispatch(1)
    with pytest.raises(TypeError, match="ctx"):
        jobs.progress.dispatch(ctx=1)
    assert queue.stats().total == 0


def test_using_delay_priority_and_queue(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    low = jobs.add.dispatch(0, 0)
    high = jobs.add.using(priority=5).dispatch(1, 1)
    later = jobs.add.using(delay=timedelta(hours=1)).dispatch(2, 2)
    mail = jobs.add.using(queue="mail").dispatch(3, 3)
    assert queue.get(later).delayed  # type: ignore[union-attr]
    stats = queue.stats()
    assert (stats.waiting, stats.delayed) == (3, 1)
    assert queue.run(queues=["default"]).ran == 2
    assert CALLS == [("add", 1, 1), ("add", 0, 0)]  # higher priority first
    assert queue.get(low) is None and queue.get(high) is None
    assert queue.get(mail) is not None
    assert queue.run().ran == 1
    assert queue.get(later) is not None  # still delayed
    with pytest.raises(ValueError, match="delay"):
        jobs.add.using(delay=-1)
    with pytest.raises(TypeError, match="priority"):
        jobs.add.using(priority="high")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="queue names"):
        queue.run(queues="mail")  # type: ignore[arg-type]


def test_unique_jobs_deduplicate_while_unclaimed(queue: reqrunner.JobQueue) -> None:
    @queue.job(name="reindex", unique=True)
    def reindex(page: int) -> None:
        CALLS.append(("reindex", page))

    first = reindex.dispatch(7)
    assert reindex.dispatch(7) == first
    assert reindex.dispatch(page=7) != first  # another call shape is another key
    other = reindex.dispatch(8)
    assert other != first
    keyed = reindex.using(unique_key="site").dispatch(1)
    assert reindex.using(unique_key="site").dispatch(2) == keyed
    assert queue.count_jobs() == 4
    queue.run()
    # once claimed (here: done), the key is free again
    assert reindex.dispatch(7) != first
    assert sorted(CALLS) == [("reindex", 1), ("reindex", 7), ("reindex", 7), ("reindex", 8)]


def test_dispatch_many_inserts_in_chunks_and_keeps_order(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    ids = jobs.add.dispatch_many([{"a": i, "b": 0} for i in range(1200)] + [[5, 5]])
    assert len(ids) == 1201 == len(set(ids))
    assert ids == sorted(ids)
    assert queue.get(ids[0]).kwargs == {"a": 0, "b": 0}  # type: ignore[union-attr]
    assert queue.get(ids[-1]).args == (5, 5)  # type: ignore[union-attr]
    assert jobs.add.dispatch_many([]) == []
    with pytest.raises(TypeError, match="item 1"):
        jobs.add.dispatch_many([{"a": 1, "b": 1}, 3])  # type: ignore[list-item]
    assert queue.count_jobs() == 1201


def test_dispatch_many_with_unique_jobs(queue: reqrunner.JobQueue) -> None:
    @queue.job(name="u", unique=True)
    def u(n: int) -> None: ...

    ids = u.dispatch_many([{"n": 1}, {"n": 2}, {"n": 1}])
    assert ids[0] == ids[2] != ids[1]
    assert queue.count_jobs() == 2


def test_dispatch_by_name_and_unknown_job_fails_with_a_clear_error(
    queue: reqrunner.JobQueue,
) -> None:
    jobs = catalogue.register(queue)
    by_name = queue.dispatch("add", 2, b=3)
    unknown = queue.dispatch("nobody.registered", 1)
    report = queue.run()
    assert CALLS == [("add", 2, 3)]
    assert queue.get(by_name) is None
    info = queue.get(unknown)
    assert info is not None and info.error is not None
    assert info.error.type == "reqrunner.UnknownJob"
    assert getattr(reqrunner, info.error.type.removeprefix("reqrunner.")) is reqrunner.UnknownJob
    assert "nobody.registered" in info.error.message
    assert "is the module that declares it imported" in info.error.message
    # an unknown name may be a rolling deploy: it is retried with backoff, not failed at once
    assert info.state is JobState.WAITING and info.delayed
    assert report.retried == 1
    assert jobs.add.name == "add"


def test_an_unknown_name_close_to_a_registered_one_is_suggested(
    queue: reqrunner.JobQueue,
) -> None:
    catalogue.register(queue)
    typo = queue.dispatch("fails_twise")
    queue.run()
    info = queue.get(typo)
    assert info is not None and info.error is not None
    assert info.error.type == "reqrunner.UnknownJob"
    assert info.error.message == (
        "no function is registered as 'fails_twise' in this process; did you mean 'fails_twice'?"
    )


def test_stored_arguments_that_do_not_fit_fail_the_job_and_the_run_goes_on(
    queue: reqrunner.JobQueue,
) -> None:
    # An older deploy, where "sleeps" took other arguments, dispatched these by name.
    old_deploy = reqrunner.JobQueue(queue.engine)
    bad = old_deploy.dispatch("sleeps", 1, 2, 3)
    good = old_deploy.dispatch("add", 1, 1)
    catalogue.register(queue)
    report = queue.run()
    assert (report.ran, report.failed, report.succeeded) == (2, 1, 1)
    assert CALLS == [("add", 1, 1)] and queue.get(good) is None
    info = queue.get(bad)
    assert info is not None and info.error is not None
    # arguments never fit by retrying: failed at once, on the first attempt
    assert (info.state, info.attempts, info.error.type) == (JobState.FAILED, 1, "TypeError")
    assert "do not fit sleeps(seconds: float)" in info.error.message


def test_failures_retry_with_backoff_then_fail_with_traceback(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    job_id = jobs.always_fails.dispatch("it <broke>")
    report = queue.run()
    assert (report.ran, report.retried, report.failed) == (2, 1, 1)
    info = queue.get(job_id)
    assert info is not None
    assert info.state is JobState.FAILED and info.attempts == 2
    assert info.error is not None
    assert (info.error.type, info.error.message) == ("ValueError", "it <broke>")
    assert "Traceback" in info.error.traceback and "always_fails" in info.error.traceback
    assert [h["outcome"] for h in info.history] == ["raised", "raised"]
    assert info.finished_at is not None
    assert [j.id for j in queue.list_jobs(state="failed")] == [job_id]


def test_fails_twice_then_succeeds_on_the_third_attempt(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    jobs.fails_twice.dispatch()
    report = queue.run()
    assert (report.ran, report.retried, report.succeeded, report.failed) == (3, 2, 1, 0)
    assert CALLS == [("fails_twice", 1), ("fails_twice", 2), ("fails_twice", 3)]


def test_backoff_delays_the_retry(queue: reqrunner.JobQueue) -> None:
    @queue.job(name="flaky", backoff=30)
    def flaky() -> None:
        raise OSError("down")

    job_id = flaky.dispatch()
    before = time.time()
    assert queue.run().retried == 1
    info = queue.get(job_id)
    assert info is not None and info.state is JobState.WAITING
    wait = info.available_at.timestamp() - before
    assert 30 * 0.75 - 1 <= wait <= 30 * 1.25 + 1
    assert queue.run().ran == 0  # not due yet


def test_retry_delete_and_retry_failed(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    ids = [jobs.always_fails.dispatch() for _ in range(3)]
    queue.run()
    assert queue.count_jobs(state="failed") == 3
    assert queue.retry(ids[0]) is True
    info = queue.get(ids[0])
    assert info is not None and info.state is JobState.WAITING and info.attempts == 0
    assert queue.retry(ids[0]) is True  # a waiting job may be made due again
    assert queue.delete(ids[1]) is True
    with pytest.raises(reqrunner.JobNotFound, match=f"no job {ids[1]} "):
        queue.delete(ids[1])
    assert queue.retry_failed() == 1
    assert queue.count_jobs(state="waiting") == 2
    queue.run()
    assert queue.delete_failed() == 2
    assert queue.stats().total == 0
    with pytest.raises(TypeError, match="job id"):
        queue.get("1")  # type: ignore[arg-type]


def test_an_id_not_in_the_store_is_job_not_found(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    gone = jobs.noop.dispatch()
    queue.run()  # finished, so deleted
    for action in (queue.retry, queue.delete, queue.release):
        with pytest.raises(reqrunner.JobNotFound) as raised:
            action(gone)
        assert raised.value.job_id == gone
        assert isinstance(raised.value, LookupError)
    assert queue.get(gone) is None  # looking a job up is not an error


def test_retry_of_a_reserved_job_is_refused_not_missing(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    job_id = jobs.noop.dispatch()
    queue.store.cycle([], claim=1)
    assert queue.retry(job_id) is False
    assert queue.release(job_id) is True
    assert queue.release(job_id) is False


def test_a_job_that_raises_a_reqrunner_error_records_its_public_name(
    queue: reqrunner.JobQueue,
) -> None:
    @queue.job(name="retries_a_gone_job", attempts=1)
    def retries_a_gone_job() -> None:
        queue.retry(999_999)

    job_id = retries_a_gone_job.dispatch()
    queue.run()
    info = queue.get(job_id)
    assert info is not None and info.error is not None
    assert info.error.type == "reqrunner.JobNotFound"
    assert info.error.message.startswith("no job 999999")


def test_context_progress_description_and_async_jobs(queue: reqrunner.JobQueue) -> None:
    queue_keep = reqrunner.JobQueue(queue.engine, keep_done=True)
    jobs = catalogue.register(queue_keep)
    job_id = jobs.progress.dispatch()
    async_id = jobs.async_add.dispatch(2, 3)
    assert queue_keep.run().succeeded == 2
    info = queue_keep.get(job_id)
    assert info is not None and info.state is JobState.DONE
    assert (info.progress, info.label, info.description) == (
        0.5,
        "half way",
        "Working through the list",
    )
    assert ("async_add", 2, 3) in CALLS and ("progress", job_id) in CALLS
    assert queue_keep.get(async_id).state is JobState.DONE  # type: ignore[union-attr]
    assert queue_keep.stats().done == 2
    assert queue_keep.prune(done_older_than=0) == 2
    assert queue_keep.stats().total == 0


def test_progress_is_visible_while_the_job_runs(queue: reqrunner.JobQueue) -> None:
    seen: list[reqrunner.JobInfo | None] = []

    @queue.job(name="watched")
    def watched(ctx: reqrunner.JobContext) -> None:
        ctx.progress(0.25, "a quarter")
        seen.append(queue.get(ctx.job_id))
        with pytest.raises(ValueError, match="outside"):
            ctx.progress(1.5)

    watched.dispatch()
    assert queue.run().succeeded == 1
    info = seen[0]
    assert info is not None and info.state is JobState.RESERVED
    assert (info.progress, info.label, info.attempts) == (0.25, "a quarter", 1)
    assert info.reserved_until is not None


def test_release_frees_a_stuck_reservation_and_fences_the_old_holder(
    queue: reqrunner.JobQueue,
) -> None:
    released: list[bool] = []

    @queue.job(name="stuck")
    def stuck(ctx: reqrunner.JobContext) -> None:
        released.append(queue.release(ctx.job_id))
        ctx.progress(0.1)  # the lease is gone: nothing is written
        assert ctx.lost

    job_id = stuck.dispatch()
    assert queue.release(job_id) is False  # not reserved
    queue.run(max_jobs=1)
    assert released == [True]
    info = queue.get(job_id)
    # the first holder's success was fenced off: the job is due again, not deleted
    assert info is not None and info.state is JobState.WAITING and info.progress is None


def test_list_jobs_filters_and_pages(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    ids = [jobs.add.dispatch(i, i) for i in range(5)]
    jobs.noop.using(queue="other", delay=600).dispatch()
    assert [j.id for j in queue.list_jobs(state="waiting", limit=2, offset=1)] == ids[1:3]
    assert queue.count_jobs(state="delayed") == 1
    assert queue.count_jobs(state="due") == 5
    assert queue.count_jobs(queue="other") == 1
    assert queue.count_jobs(name="ad") == 5
    assert queue.list_jobs(state=JobState.RESERVED) == []
    with pytest.raises(ValueError, match="unknown job state"):
        queue.list_jobs(state="running")
    with pytest.raises(ValueError, match="limit"):
        queue.list_jobs(limit=0)


def test_stats_and_due(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    assert queue.stats() == reqrunner.QueueStats(
        waiting=0, delayed=0, reserved=0, failed=0, done=0, oldest_due_age=None
    )
    assert not queue.has_due() and queue.next_due_in() is None
    jobs.noop.using(delay=120).dispatch()
    assert not queue.has_due()
    due_in = queue.next_due_in()
    assert due_in is not None and 100 < due_in <= 120
    jobs.noop.dispatch()
    time.sleep(0.05)
    assert queue.has_due() and queue.has_due(queues=["default"])
    assert not queue.has_due(queues=["elsewhere"])
    stats = queue.stats()
    assert (stats.waiting, stats.delayed) == (1, 1)
    assert stats.oldest_due_age is not None and stats.oldest_due_age >= 0.05


def test_prune_keeps_recent_failures(queue: reqrunner.JobQueue) -> None:
    jobs = catalogue.register(queue)
    jobs.always_fails.dispatch()
    queue.run()
    assert queue.prune() == 0  # 180 days by default
    assert queue.prune(failed_older_than=timedelta(0)) == 1
    with pytest.raises(ValueError, match="failed_older_than"):
        queue.prune(failed_older_than=-1)


def test_meta_secret_and_leases(queue: reqrunner.JobQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQRUNNER_SECRET", raising=False)
    assert queue.get_meta("x") is None
    queue.set_meta("x", "1")
    queue.set_meta("x", "2")
    assert queue.get_meta("x") == "2"
    secret = queue.secret
    assert len(secret) >= 32
    other = reqrunner.JobQueue(queue.engine)  # another process would read the same one
    assert other.secret == secret
    token = queue.acquire_lease("run:0", 30)
    assert token is not None
    assert other.acquire_lease("run:0", 30) is None
    assert queue.renew_lease("run:0", token, 30)
    assert not queue.renew_lease("run:0", "forged", 30)
    queue.release_lease("run:0", token)
    assert other.acquire_lease("run:0", 0.01) is not None
    time.sleep(0.05)
    assert queue.acquire_lease("run:0", 30) is not None  # the expired lease is taken over
    monkeypatch.setenv("REQRUNNER_SECRET", "from-the-environment")
    assert reqrunner.JobQueue(queue.engine).secret == "from-the-environment"


def test_job_options_are_validated(queue: reqrunner.JobQueue) -> None:
    for bad, match in [
        ({"attempts": 0}, "attempt"),
        ({"ttr": 0}, "ttr"),
        ({"backoff": -1}, "backoff"),
        ({"queue": ""}, "queue"),
        ({"name": "x" * 300}, "name"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            queue.job(**bad)(lambda: None)  # type: ignore[arg-type]
    assert queue.jobs == {}


def test_with_database_registers_the_same_jobs_elsewhere(
    queue: reqrunner.JobQueue, tmp_path: object
) -> None:
    catalogue.register(queue)
    other = queue.with_database(f"sqlite:///{tmp_path}/other.sqlite3")
    assert set(other.jobs) == set(queue.jobs)
    other.jobs["add"].dispatch(4, 4)
    assert queue.stats().total == 0
    assert other.run().succeeded == 1
    assert CALLS == [("add", 4, 4)]
    other.close()


def test_meta_by_prefix_and_delete(queue: reqrunner.JobQueue) -> None:
    queue.set_meta("cli.worker.a", "1")
    queue.set_meta("cli.worker.b", "2")
    assert queue.get_meta_prefixed("cli.worker.") == {"cli.worker.a": "1", "cli.worker.b": "2"}
    queue.set_meta("run_1", "x")
    queue.set_meta("runX2", "y")  # LIKE reads "_" as any character: must not be returned
    assert queue.get_meta_prefixed("run_") == {"run_1": "x"}
    queue.delete_meta("cli.worker.a")
    assert queue.get_meta_prefixed("cli.worker.") == {"cli.worker.b": "2"}
