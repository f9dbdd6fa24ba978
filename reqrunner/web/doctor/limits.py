"""The limits and activity checks: the memory limit as the serving process reads it against
``max_memory``, what the server says of a request timeout against ``max_time``, the time since
the last run from each trigger, workers seen and the oldest due job."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ... import memory, triggers
from ...models import Limits
from .. import health
from ..admin.data import workers_seen
from .report import Check, Status
from .words import seconds, size

if TYPE_CHECKING:
    from ...queue import JobQueue

__all__ = ["activity_checks", "last_runs", "limit_checks"]

LIMITS = "Limits"
ACTIVITY = "Activity"
OVERDUE = 3600.0
"""Seconds a due job may wait before doctor says nothing runs the queue often enough."""
SMALL_BUDGET = 64 << 20
"""A run budget below this leaves little room for a job beside the app itself."""


def last_runs(queue: JobQueue) -> dict[str, float]:
    """When each trigger last ran a batch (``sync``, ``tick``, ``cli-run``, ``admin``, …), as
    seconds since the epoch, across every process: the per-trigger records the runs keep
    (:func:`reqrunner.triggers.last_runs`), and the middleware's last-run record for a run
    made before those existed."""
    found = {via: run.at for via, run in triggers.last_runs(queue).items()}
    record = health.read(queue, health.LAST_RUN)
    if record is not None and isinstance(record.get("at"), int | float):
        via = str(record.get("via", "unknown"))
        found[via] = max(found.get(via, 0.0), float(record["at"]))
    return found


def limit_checks(limits: Limits, facts: Mapping[str, Any] | None) -> list[Check]:
    """``max_memory`` against the memory limit, ``max_time`` against a request timeout.

    ``facts``: what the site's process said of itself (``{path}/doctor``); without them this
    process's own limits are read (right for a cron ``reqrunner run`` on the same machine)."""
    if facts is not None and isinstance(facts.get("memory_limits"), dict):
        where = "the site's process"
        sources = {str(k): int(v) for k, v in facts["memory_limits"].items()}
        rss = int(facts.get("rss") or 0)
    else:
        where = "this process (doctor's own; give --url to read the site's)"
        sources = memory.limits_by_source()
        rss = memory.rss()
    limit = min(sources.values())
    source = min(sources, key=lambda k: sources[k])
    if limits.memory_bytes is not None:
        budget: int | None = limits.memory_bytes
        setting = f"max_memory={size(budget)}"
    elif limits.memory_percent is not None:
        budget = int(limit * limits.memory_percent / 100)
        setting = f"max_memory={limits.memory_percent:g}%"
    else:
        budget, setting = None, "max_memory=None"
    read = ", ".join(f"{name} {size(v)}" for name, v in sources.items())
    found = f"Memory limit of {where}: {size(limit)} (from {source}; read: {read}). "
    data: dict[str, Any] = {
        "limit": limit,
        "source": source,
        "sources": sources,
        "rss": rss,
        "budget": budget,
    }
    status: Status = "ok"
    advice = ""
    if budget is None:
        found += f"{setting}: runs are not bounded by memory."
    else:
        found += f"{setting} lets a run grow to {size(budget)}; the process uses {size(rss)} now."
        if rss >= budget:
            status = "fail"
            found += " A run stops before its first job: the process is already above the bound."
            advice = "Raise max_memory (a percentage of the limit, or a size like '256M')."
        elif budget > limit:
            status = "warn"
            found += " The bound is above the limit: the host stops the process first."
            advice = f"Set max_memory below {size(limit)}, e.g. 80 (percent)."
        elif budget - rss < SMALL_BUDGET:
            status = "warn"
            advice = "Little room is left for jobs: raise max_memory or the host's memory limit."
    checks = [
        Check(
            id="limits.memory",
            area=LIMITS,
            title="Memory",
            status=status,
            found=found,
            advice=advice,
            data=data,
        )
    ]
    bound = "no max_time" if limits.max_time is None else f"max_time={limits.max_time:g} s"
    cgi = bool(facts and facts.get("run_once"))
    found = f"{bound}. The server does not say how long it lets a request run"
    found += (
        ": under CGI a run lives in the process of its {path}/run request, which the web "
        "server stops at its timeout (Apache's Timeout, 60 s by default)."
        if cgi
        else "; reqrunner's runs happen after the response, so only a host that stops "
        "processes (CGI, Passenger's max request time) can cut one short."
    )
    checks.append(
        Check(
            id="limits.request_timeout",
            area=LIMITS,
            title="Request timeout",
            status="unknown",
            found=found,
            advice="Keep max_time below the host's request timeout.",
            data={"max_time": limits.max_time, "exposed": None},
        )
    )
    return checks


def activity_checks(queue: JobQueue, *, run_rate: float | None) -> list[Check]:
    """Time since each trigger last ran, workers seen, the oldest due job. ``run_rate`` is the
    middleware's (``None``: not known, doctor was given a queue alone)."""
    now = time.time()
    runs = last_runs(queue)
    if runs:
        found = "; ".join(f"via {via} {seconds(now - at)} ago" for via, at in runs.items())
        run_check = Check(
            id="activity.last_runs",
            area=ACTIVITY,
            title="Last runs",
            status="ok",
            found=f"Last in-request run: {found}.",
            data={"runs": runs},
        )
    else:
        run_check = Check(
            id="activity.last_runs",
            area=ACTIVITY,
            title="Last runs",
            status="ok",
            found="No in-request run recorded yet.",
            data={"runs": {}},
        )
    workers = workers_seen(queue, now)
    worker_check = Check(
        id="activity.workers",
        area=ACTIVITY,
        title="Workers",
        status="ok",
        found=f"{len(workers)} `reqrunner work` process(es) seen in the last 35 s"
        + (": " + ", ".join(f"{w.host} pid {w.pid}" for w in workers) if workers else "."),
        data={"workers": [{"host": w.host, "pid": w.pid} for w in workers]},
    )
    stats = queue.stats()
    oldest = stats.oldest_due_age
    status: Status = "ok"
    advice = ""
    if oldest is None:
        found = "Nothing is due."
    else:
        found = f"The oldest due job has waited {seconds(oldest)} ({stats.waiting} due now)."
        if oldest > OVERDUE:
            status = "warn"
            advice = (
                "Nothing runs the queue often enough: raise run_rate, give the tick URL to an "
                "uptime monitor, or add a cron line (reqrunner run)."
            )
    if run_rate is not None and run_rate <= 0 and not workers and stats.waiting + stats.delayed:
        status = "warn"
        found += " Page views do not run jobs (run_rate=0) and no worker is running."
        advice = "Unless cron runs `reqrunner run`, start `reqrunner work` or set run_rate above 0."
    due_check = Check(
        id="activity.oldest_due",
        area=ACTIVITY,
        title="Oldest due job",
        status=status,
        found=found,
        advice=advice,
        data={"oldest_due_age": oldest, "waiting": stats.waiting},
    )
    return [run_check, worker_check, due_check]
