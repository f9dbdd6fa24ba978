"""``reqrunner periodic`` (the schedules) and the trigger-health part of ``reqrunner stats``."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

from .. import triggers
from ..periodic import ScheduleInfo
from ..queue import JobQueue
from .app import EXIT_OK
from .output import Output, stats_to_dict
from .worker import workers_seen

__all__ = ["periodic", "stats"]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def schedule_to_dict(info: ScheduleInfo) -> dict[str, Any]:
    """A JSON-ready dict of one schedule."""
    return {
        "name": info.name,
        "expression": info.expression,
        "queue": info.queue,
        "next_slot": _iso(info.next_slot),
        "last_slot": _iso(info.last_slot),
        "last_outcome": info.last_outcome,
        "last_job_id": info.last_job_id,
        "last_job_state": info.last_job_state,
    }


def periodic(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    """Print each schedule the app declares: expression, next slot, last slot and outcome."""
    found = queue.periodic_jobs.describe()
    if out.json:
        out.data([schedule_to_dict(info) for info in found])
        return EXIT_OK
    if not found:
        out.line("No periodic jobs are declared (@queue.periodic).")
        return EXIT_OK
    rows = []
    for info in found:
        last = "-"
        if info.last_slot is not None:
            last = f"{_local(info.last_slot)} {info.last_outcome}"
            if info.last_job_id is not None:
                last += f" (job {info.last_job_id}: {info.last_job_state})"
        rows.append([info.name, info.expression, _local(info.next_slot), last])
    out.table(["NAME", "SCHEDULE", "NEXT SLOT", "LAST SLOT"], rows, title="Periodic jobs")
    return EXIT_OK


def _local(value: datetime) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def stats(queue: JobQueue, args: argparse.Namespace, out: Output) -> int:
    """Counts, workers, and how the site's triggers are doing (with the tick URL to give an
    uptime monitor when they are too rare)."""
    counts = queue.stats()
    runs = triggers.last_runs(queue)
    warnings = triggers.assess(runs, counts, queue.periodic_jobs.tightest_interval())
    tick = _tick_url(queue, args.site) if args.site else None
    if out.json:
        data = stats_to_dict(counts, workers_seen(queue))
        data["triggers"] = {
            via: {"at": run.at, "ran": run.ran, "stopped_by": run.stopped_by}
            for via, run in sorted(runs.items())
        }
        data["warnings"] = warnings
        data["tick_url"] = tick
        out.data(data)
        return EXIT_OK
    out.stats(counts, workers_seen(queue))
    now = time.time()
    if runs:
        rows = [
            [via, f"{now - run.at:.0f} s ago", str(run.ran), run.stopped_by]
            for via, run in sorted(runs.items(), key=lambda item: -item[1].at)
        ]
        out.table(["TRIGGER", "LAST RUN", "RAN", "STOPPED BY"], rows, title="Triggers")
    for warning in warnings:
        out.line(f"Warning: {warning}")
    if warnings:
        out.line(
            "Give an uptime monitor (or a remote cron) the site's tick URL to fetch every "
            "minute: "
            + (tick or "`reqrunner stats --site https://YOUR-SITE/_reqrunner` prints it.")
        )
    return EXIT_OK


def _tick_url(queue: JobQueue, site: str) -> str:
    # Only here does stats sign anything: the web side's signer and constants load on demand.
    from ..web.core import TICK_TOKEN_TTL  # noqa: PLC0415
    from ..web.routes import TICK_PURPOSE  # noqa: PLC0415
    from ..web.signing import Signer  # noqa: PLC0415

    token = Signer(queue.secret).sign(TICK_PURPOSE, ttl=TICK_TOKEN_TTL)
    return f"{site.rstrip('/')}/tick?token={token}"
