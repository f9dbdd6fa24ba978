"""A site with periodic jobs, for the console script's and the admin's tests: its database is
``REQRUNNER_DATABASE_URL``; its jobs append their slot to ``PERIODIC_LOG``."""

from __future__ import annotations

import os

import reqrunner
from reqrunner import JobContext

queue = reqrunner.JobQueue(keep_done=True)


def _note(ctx: JobContext, name: str) -> None:
    info = queue.get(ctx.job_id)
    log = os.environ.get("PERIODIC_LOG")
    if log and info is not None:
        with open(log, "a") as out:
            out.write(f"{name}|{info.description}\n")


@queue.periodic("30 3 * * *", tz="Europe/Berlin", name="nightly-digest")
def nightly_digest(ctx: JobContext) -> None:
    _note(ctx, "nightly-digest")


@queue.periodic(every=1, name="every-second")
def every_second(ctx: JobContext) -> None:
    _note(ctx, "every-second")
