"""The site the CLI tests load with ``--app tests.cli.app_for_cli:queue``.

Its ``JobQueue()`` takes the database from ``REQRUNNER_DATABASE_URL``, which each test sets for
the subprocess, as a site configured through its environment would. The tests build the same
queue in-process with ``build_queue(url)`` to dispatch and inspect. ``site`` is an ASGI app with
reqrunner's middleware, for ``ping``.
"""

from __future__ import annotations

import os
import time
from typing import Any

import reqrunner
from reqrunner.web.asgi import ASGIMiddleware


def stamp(path: str, tag: str = "") -> None:
    """Append when it ran (epoch seconds) to ``path``: the tests measure latency from it."""
    now = time.time()
    with open(path, "a") as f:
        f.write(f"{now!r} {tag}\n")


def sleeps(path: str, seconds: float) -> None:
    """Write ``start``, sleep, write ``end``: shows whether a job was let finish."""
    with open(path, "a") as f:
        f.write("start\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write("end\n")


def gated(path: str, gate: str) -> None:
    """Write ``start``, wait until the file ``gate`` exists (30 s at most), write ``end``."""
    with open(path, "a") as f:
        f.write("start\n")
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(path, "a") as f:
        f.write("end\n")


def fails(message: str, ctx: reqrunner.JobContext) -> None:
    """Report half progress, then raise: a failed job with a traceback and a progress."""
    ctx.progress(0.5, "half way")
    raise RuntimeError(message)


def build_queue(url: str | None = None) -> reqrunner.JobQueue:
    q = reqrunner.JobQueue(url, keep_done=True)
    q.job(name="cli.stamp")(stamp)
    q.job(name="cli.sleeps")(sleeps)
    q.job(name="cli.gated")(gated)
    q.job(name="cli.fails", attempts=1)(fails)
    return q


queue = build_queue()
# A site that names its database in code: --db must still win over it.
pinned = build_queue(os.environ.get("CLI_PINNED_URL", "sqlite:///never-created.sqlite3"))


async def _page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"plain"})


site = ASGIMiddleware(_page, queue, run_rate=0, mode="sync")
