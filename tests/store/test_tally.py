"""Outcome counts stay exact when several runs share one process (one store)."""

from __future__ import annotations

import threading

import reqrunner


def test_counts_are_neither_lost_nor_doubled_by_concurrent_runs(
    queue: reqrunner.JobQueue,
) -> None:
    @queue.job(name="quick")
    def quick(i: int) -> None:
        """Nothing to do: the runs spend their time in claim cycles."""

    jobs = 600
    quick.dispatch_many([[i] for i in range(jobs)])
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            # Short runs: every one ends by writing the tally, while the others add to it.
            while queue.run(max_jobs=3).ran:
                pass
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert queue.count_jobs() == 0
    assert queue.count_finished(0)["done"] == jobs
    queue.store._tally.clear()  # nothing may be left unwritten either
    assert queue.count_finished(0)["done"] == jobs
