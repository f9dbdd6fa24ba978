"""Trigger health: where runs come from and when, and whether that is often enough.

Every run that names its trigger (``queue.run(via=...)``) leaves a record in the meta table
under ``reqrunner.trigger.<via>``: when it ran and what it did. The triggers are ``sync``,
``async`` and ``js`` (a page view, by mode), ``tick`` (the tick URL), ``endpoint`` (a signed
POST to ``{path}/run`` that said nothing more), ``admin`` (the Queue Manager's button),
``cli-run`` and ``cli-work`` (the console script). A site whose runs are further apart than its
tightest schedule, or whose oldest due job waits too long, is told so by :func:`assess`, with
the remedy: an uptime monitor fetching the tick URL.

:func:`last_runs` is the reading side, for the admin, ``reqrunner stats`` and anything else
that wants to judge a site's triggers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .models import QueueStats, RunReport

__all__ = [
    "DUE_AGE_WARNING",
    "PREFIX",
    "RECORD_EVERY",
    "TriggerRun",
    "assess",
    "last_runs",
    "note_run",
]

log = logging.getLogger("reqrunner")

PREFIX = "reqrunner.trigger."
RECORD_EVERY = 5.0
"""A process writes a trigger's record at most this often (seconds): an idle worker runs every
few seconds, and the record only needs to say roughly when the last run was."""
DUE_AGE_WARNING = 900.0
"""Seconds the oldest due job may wait before the site is told its triggers are too rare."""
GAP_SLACK = 60.0
"""Seconds of slack on top of the tightest schedule's interval before the gap warns."""

_written: dict[str, float] = {}
_written_lock = threading.Lock()


class _Meta(Protocol):
    def set_meta(self, name: str, value: str) -> None: ...


class _Prefixed(Protocol):
    def get_meta_prefixed(self, prefix: str) -> dict[str, str]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class TriggerRun:
    """The latest run a trigger made (across all processes)."""

    via: str
    at: float
    """When it ended (epoch seconds)."""
    ran: int
    stopped_by: str


def note_run(queue: _Meta, via: str, report: RunReport) -> None:
    """Record that a run came from ``via`` (at most every :data:`RECORD_EVERY` seconds per
    process and trigger, always when it ran jobs); a failure is logged, never raised."""
    now = time.time()
    with _written_lock:
        if report.ran == 0 and now - _written.get(via, 0.0) < RECORD_EVERY:
            return
        _written[via] = now
    value = {"at": now, "ran": report.ran, "stopped_by": report.stopped_by}
    try:
        queue.set_meta(PREFIX + via[:40], json.dumps(value))
    except Exception:
        log.exception("reqrunner could not record the run from %s", via)


def last_runs(queue: _Prefixed) -> dict[str, TriggerRun]:
    """The latest run of each trigger that has run, by ``via``; records that do not parse
    (another version's) are left out."""
    found = {}
    for name, raw in queue.get_meta_prefixed(PREFIX).items():
        via = name[len(PREFIX) :]
        try:
            value: dict[str, Any] = json.loads(raw)
            found[via] = TriggerRun(
                via=via,
                at=float(value["at"]),
                ran=int(value["ran"]),
                stopped_by=str(value["stopped_by"]),
            )
        except (ValueError, KeyError, TypeError):
            continue
    return found


def assess(
    runs: Mapping[str, TriggerRun],
    stats: QueueStats,
    tightest: float | None,
    now: float | None = None,
) -> list[str]:
    """What is wrong with how often jobs run, in sentences (none when all is well).

    Two signs: the latest run of any trigger is older than the tightest schedule's interval
    (plus :data:`GAP_SLACK`), so slots are being missed; or the oldest due job has waited more
    than :data:`DUE_AGE_WARNING` seconds.
    """
    now = time.time() if now is None else now
    warnings = []
    latest = max((run.at for run in runs.values()), default=None)
    if tightest is not None:
        if latest is None:
            warnings.append("No run has been recorded yet, and periodic jobs wait for one to fire.")
        elif now - latest > tightest + GAP_SLACK:
            warnings.append(
                f"The last run was {_span(now - latest)} ago, but the tightest schedule needs "
                f"one every {_span(tightest)}: slots are being missed."
            )
    age = stats.oldest_due_age
    if age is not None and age > DUE_AGE_WARNING:
        warnings.append(f"The oldest due job has waited {_span(age)}.")
    return warnings


def _span(seconds: float) -> str:
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
