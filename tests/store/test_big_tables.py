"""Counts that stay consistent under load, and indexes that reach databases made earlier."""

from __future__ import annotations

import threading

import reqrunner
from reqrunner.store.dialects import JOBS

NEW_INDEXES = ("ix_reqrunner_jobs_waiting", "ix_reqrunner_jobs_finished")
#: The due index as an older release made it (``state`` first), replaced by the one above.
OLD_INDEX = "ix_reqrunner_jobs_due"


def test_stats_are_one_snapshot_while_jobs_come_and_go(db_url: str) -> None:
    queue = reqrunner.JobQueue(db_url)

    @queue.job(name="t.noop")
    def noop() -> None:
        pass

    stop = threading.Event()
    errors: list[BaseException] = []

    def busy(work: object) -> None:
        while not stop.is_set():
            try:
                work()  # type: ignore[operator]
            except BaseException as exc:  # every failure counts, whatever it is
                errors.append(exc)
                return

    threads = [
        threading.Thread(target=busy, args=(lambda: noop.dispatch_many([{}] * 20),)),
        threading.Thread(target=busy, args=(lambda: queue.run(max_jobs=20),)),
    ]
    for thread in threads:
        thread.start()
    try:
        # No job is ever delayed here: a count read from two moments would show some.
        seen = [queue.stats() for _ in range(300)]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert errors == []
    assert {s.delayed for s in seen} == {0}
    assert any(s.waiting for s in seen)
    queue.close()


def test_a_database_made_without_the_new_indexes_gets_them(db_url: str) -> None:
    first = reqrunner.JobQueue(db_url)
    first.stats()
    with first.store.db.write() as cur:
        for index in NEW_INDEXES:
            on = f" ON {JOBS}" if first.dialect.name == "mysql" else ""
            cur.execute(f"DROP INDEX {index}{on}")
        cur.execute(f"CREATE INDEX {OLD_INDEX} ON {JOBS} (state, available_at)")
        assert not set(NEW_INDEXES) & first.dialect.existing_indexes(cur)
    first.close()

    again = reqrunner.JobQueue(db_url)
    again.stats()
    with again.store.db.read() as cur:
        present = again.dialect.existing_indexes(cur)
    assert set(NEW_INDEXES) <= present
    assert OLD_INDEX not in present
    again.close()


def test_a_database_made_without_the_new_columns_gets_them(db_url: str) -> None:
    first = reqrunner.JobQueue(db_url)
    first.stats()
    with first.store.db.write() as cur:
        # As a database made before unique slots were kept across claims and leases named
        # their holder.
        cur.execute(f"ALTER TABLE {JOBS} DROP COLUMN unique_hash")
        cur.execute("ALTER TABLE reqrunner_leases DROP COLUMN holder")
    first.close()

    again = reqrunner.JobQueue(db_url)

    @again.job(unique=True)
    def once(n: int) -> None:
        pass

    job_id = once.dispatch(1)
    assert once.dispatch(1) == job_id
    assert again.acquire_lease("reqrunner.test", 30) is not None
    assert again.run(max_jobs=1).succeeded == 1
    with again.store.db.read() as cur:
        cur.execute(f"SELECT unique_hash FROM {JOBS} WHERE 1 = 0")
        cur.execute("SELECT holder FROM reqrunner_leases WHERE 1 = 0")
    again.close()
