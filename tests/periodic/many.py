"""One of many processes evaluating the same schedules: ``python -m tests.periodic.many URL
LOG START END``. From epoch time START to END (and a little longer) it runs the queue
every 20 ms; each run of a
periodic job appends its slot and this process's id to LOG."""

from __future__ import annotations

import os
import sys
import time

import reqrunner
from reqrunner import JobContext


def main(url: str, log: str, start: float, end: float) -> None:
    queue = reqrunner.JobQueue(url, keep_done=True)

    def note(ctx: JobContext, schedule: str) -> None:
        info = queue.get(ctx.job_id)
        assert info is not None
        with open(log, "a") as out:
            out.write(f"{schedule}|{info.description}|{os.getpid()}\n")

    # overlap: a slot's job still waiting when the next slot comes (a busy machine) must not
    # cost that slot; catch_up="all": a process that looks late still dispatches each slot.
    @queue.periodic(every=1, name="every-second", catch_up="all", overlap=True)
    def every_second(ctx: JobContext) -> None:
        note(ctx, "every-second")

    @queue.periodic("* * * * *", name="every-minute")
    def every_minute(ctx: JobContext) -> None:
        note(ctx, "every-minute")

    # The schedules' clock runs from START to END (every process comes up before START, so
    # all of them see the same slots); the processes go on running a second longer, so that
    # the last slot's job runs too.
    queue.periodic_jobs.clock = lambda: min(max(time.time(), start), end)
    time.sleep(max(0.0, start - time.time()))
    while time.time() < end + 1.5:
        queue.run(max_time=1)
        time.sleep(0.02)
    queue.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
