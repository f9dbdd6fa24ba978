"""The kept counts of jobs per state: always what a count of the rows would say, on every
database, after any mix of operations; and reading them costs the same however big the table."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

import reqrunner
from reqrunner.store.counts import SPLIT_LIMIT, STATES, totals
from reqrunner.store.dialects import JOBS
from tests.store.history import add_rows

FIELDS = ("waiting", "delayed", "reserved", "failed", "done")


def counted(queue: reqrunner.JobQueue) -> dict[str, int]:
    """The jobs per state, counted row by row (what the kept counts must equal)."""
    with queue.store.db.read() as cur:
        cur.execute(f"SELECT state, COUNT(*) FROM {JOBS} GROUP BY state")
        rows = {str(state): int(n) for state, n in cur.fetchall()}
        cur.execute(
            queue.dialect.q(
                f"SELECT COUNT(*) FROM {JOBS} WHERE state = 'waiting' AND available_at <= ?"
            ),
            (time.time() + 1.0,),
        )
        due = int(cur.fetchone()[0])
    waiting = rows.get("waiting", 0)
    return {
        "waiting": due,
        "delayed": waiting - due,
        "reserved": rows.get("reserved", 0),
        "failed": rows.get("failed", 0),
        "done": rows.get("done", 0),
    }


def kept(queue: reqrunner.JobQueue) -> dict[str, int]:
    """The counts as ``stats()`` gives them, checked against the kept totals themselves
    (``stats()`` takes due jobs from the index, so a wrong total could hide behind them)."""
    stats = queue.stats()
    with queue.store.db.read() as cur:
        cur.execute(f"SELECT {totals(queue.dialect)}")
        waiting, reserved, failed, done = (int(n) for n in cur.fetchone())
    assert waiting == stats.waiting + stats.delayed
    assert (reserved, failed, done) == (stats.reserved, stats.failed, stats.done)
    return {field: getattr(stats, field) for field in FIELDS}


def new_queue(url: str, **options: object) -> reqrunner.JobQueue:
    queue = reqrunner.JobQueue(url, **options)  # type: ignore[arg-type]

    @queue.job(name="t.work", attempts=2, backoff=0.0)
    def work(fail: bool = False) -> None:
        if fail:
            raise ValueError("asked to fail")

    @queue.job(name="t.once", unique=True, attempts=1)
    def once(key: int) -> None:
        pass

    return queue


def operations(queue: reqrunner.JobQueue, rng: random.Random) -> dict[str, Callable[[], object]]:
    """Everything that puts jobs in, moves them between states or takes them out."""
    work, once = queue.jobs["t.work"], queue.jobs["t.once"]

    def some_id(state: str) -> int | None:
        found = queue.list_jobs(state=state, limit=20)
        return rng.choice(found).id if found else None

    def hold_and_abandon() -> None:
        # A runner that claims jobs and dies: its leases expire and a later claim recovers them.
        claimed = queue.store.cycle([], claim=rng.randint(1, 3)).claimed
        with queue.store.db.write() as cur:
            for job in claimed:
                cur.execute(
                    queue.dialect.q(f"UPDATE {JOBS} SET reserved_until = ? WHERE id = ?"),
                    (time.time() - 1, job.id),
                )

    return {
        "dispatch": lambda: work.dispatch(fail=rng.random() < 0.4),
        "dispatch many": lambda: work.dispatch_many(
            [{"fail": rng.random() < 0.3} for _ in range(rng.randint(2, 30))]
        ),
        "dispatch delayed": lambda: work.using(delay=3600).dispatch(),
        "dispatch unique": lambda: once.dispatch(rng.randint(1, 4)),
        "run": lambda: queue.run(max_jobs=rng.randint(1, 15)),
        "hold and abandon": hold_and_abandon,
        "release": lambda: (i := some_id("reserved")) and queue.release(i),
        "retry one": lambda: (i := some_id("failed")) and queue.retry(i),
        "retry failed": queue.retry_failed,
        "delete one": lambda: (
            (i := some_id(rng.choice(["failed", "waiting", "done"]))) and queue.delete(i)
        ),
        "delete failed": queue.delete_failed,
        "prune": lambda: queue.prune(failed_older_than=0, done_older_than=0),
    }


@pytest.mark.parametrize("keep_done", [False, True])
def test_the_counts_equal_the_rows_after_any_mix_of_operations(
    db_url: str, keep_done: bool
) -> None:
    queue = new_queue(db_url, keep_done=keep_done)
    rng = random.Random(f"{db_url.split(':', maxsplit=1)[0]}-{keep_done}")
    ops = operations(queue, rng)
    names = sorted(ops)
    done: Counter[str] = Counter()
    for step in range(150):
        name = rng.choice(names)
        ops[name]()
        done[name] += 1
        assert kept(queue) == counted(queue), (step, name)
    # Every operation was exercised, and jobs really went through every state.
    assert set(done) == set(names)
    assert queue.count_finished(0)["failed"] > 0
    queue.close()


def test_the_counts_stay_exact_under_concurrent_dispatches_and_runs(db_url: str) -> None:
    queue = new_queue(db_url, keep_done=True)
    work = queue.jobs["t.work"]
    errors: list[BaseException] = []

    def dispatcher(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(40):
                work.dispatch_many([{"fail": rng.random() < 0.2} for _ in range(5)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    def runner() -> None:
        try:
            for _ in range(40):
                queue.run(max_jobs=4)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=runner) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert kept(queue) == counted(queue)
    assert sum(counted(queue).values()) == 3 * 40 * 5  # every job kept, done ones too
    assert counted(queue)["done"] > 0
    queue.close()


def test_a_database_whose_jobs_predate_the_counts_is_counted_on_first_open(
    db_url: str,
) -> None:
    first = new_queue(db_url)
    add_rows(first, "failed", 30)
    add_rows(first, "waiting", 20)
    first.jobs["t.work"].dispatch_many([{}] * 5)
    with first.store.db.write() as cur:
        cur.execute(f"DROP TABLE {STATES}")
    first.close()

    again = new_queue(db_url)
    assert (
        kept(again)
        == counted(again)
        == {
            "waiting": 5,
            "delayed": 20,
            "reserved": 0,
            "failed": 30,
            "done": 0,
        }
    )
    again.close()


def test_due_and_delayed_are_split_exactly_whichever_side_is_large(db_url: str) -> None:
    queue = new_queue(db_url)
    work = queue.jobs["t.work"]
    work.dispatch_many([{}] * (SPLIT_LIMIT + 5))
    assert kept(queue) == counted(queue)
    add_rows(queue, "waiting", SPLIT_LIMIT + 7)
    assert kept(queue)["waiting"] == SPLIT_LIMIT + 5
    assert kept(queue) == counted(queue)
    assert queue.count_jobs("due") == SPLIT_LIMIT + 5
    assert queue.count_jobs("delayed") == SPLIT_LIMIT + 7
    assert queue.count_jobs("waiting") == 2 * SPLIT_LIMIT + 12
    queue.close()


def vm_steps(queue: reqrunner.JobQueue, read: Callable[[], object]) -> int:
    """SQLite virtual-machine instructions ``read`` costs (in hundreds): a measure of the
    rows it touches that no machine load disturbs."""
    con = queue.dialect.connection()  # type: ignore[attr-defined]
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    con.set_progress_handler(step, 100)
    try:
        read()
    finally:
        con.set_progress_handler(None, 100)
    return steps


def test_counting_costs_the_same_with_a_hundred_times_the_history(tmp_path: object) -> None:
    queue = new_queue(f"sqlite:///{tmp_path}/jobs.sqlite3", keep_done=True)
    reads: dict[str, Callable[[], object]] = {
        "stats": queue.stats,
        "count failed": lambda: queue.count_jobs("failed"),
        "count done": lambda: queue.count_jobs("done"),
        "count delayed": lambda: queue.count_jobs("delayed"),
        "count_finished": lambda: queue.count_finished(time.time() - 86400),
    }

    def costs() -> dict[str, int]:
        return {name: vm_steps(queue, read) for name, read in reads.items()}

    for state in ("failed", "done", "waiting"):
        add_rows(queue, state, 200, finished_ago=86400.0)
    small = costs()
    for state in ("failed", "done", "waiting"):
        add_rows(queue, state, 20_000, finished_ago=86400.0)
    big = costs()
    for name in reads:
        # A count over the rows would cost a hundred times as much; a few steps of slack.
        assert big[name] <= small[name] + 5, (name, small[name], big[name])
    queue.prune(failed_older_than=timedelta(0), done_older_than=timedelta(0))
    assert kept(queue) == counted(queue)
    queue.close()


def test_jobs_a_schedule_dispatches_are_counted(db_url: str) -> None:
    queue = new_queue(db_url)

    @queue.periodic(every=60, name="minutely", catch_up="all")
    def minutely() -> None:
        pass

    start = 1_700_000_000.0
    periodic = queue.periodic_jobs
    periodic.clock = lambda: start
    periodic.fire(start)
    assert len(periodic.fire(start + 600)) == 10
    assert kept(queue) == counted(queue)
    assert kept(queue)["waiting"] == 10
    queue.close()
