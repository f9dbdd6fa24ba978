"""What the overview shows, read from the queue and the health records in its meta table.

Health is written where it happens: the middleware records its last in-request run and its last
self-request result (``reqrunner.health.*``), CLI workers their heartbeats (``cli.worker.*``).
All of it lives in the job database, so the admin shows every process's latest, whichever
process serves the page. Records from another version of reqrunner that don't parse are shown
as absent rather than failing the page.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...models import QueueStats
from .. import health

if TYPE_CHECKING:
    from ...queue import JobQueue

__all__ = ["Finished", "Overview", "Worker", "overview"]

WORKER_PREFIX = "cli.worker."
WORKER_SEEN_WITHIN = 35.0
"""Seconds: a worker heartbeats every 10 s, so one silent for longer than this has gone."""
HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True, kw_only=True, slots=True)
class Worker:
    """A ``reqrunner work`` process that sent a heartbeat recently."""

    host: str
    pid: int
    started: float
    seen: float
    queues: tuple[str, ...] | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Finished:
    """Job attempts that ended since some time, by outcome."""

    done: int
    retried: int
    failed: int

    @property
    def failure_rate(self) -> float | None:
        """Failed share of the finished jobs; ``None`` when none finished."""
        total = self.done + self.failed
        return None if total == 0 else self.failed / total


@dataclass(frozen=True, kw_only=True, slots=True)
class Overview:
    """Everything on the overview page that comes from the database."""

    stats: QueueStats
    database: str
    """The queue's database URL, password hidden."""
    keep_done: bool
    last_hour: Finished
    last_day: Finished
    last_run: dict[str, Any] | None
    self_request: dict[str, Any] | None
    workers: tuple[Worker, ...]


def workers_seen(queue: JobQueue, now: float) -> tuple[Worker, ...]:
    """Workers whose last heartbeat is recent, longest-running first."""
    seen = []
    for raw in queue.get_meta_prefixed(WORKER_PREFIX).values():
        try:
            data = json.loads(raw)
            queues = data.get("queues")
            worker = Worker(
                host=str(data["host"]),
                pid=int(data["pid"]),
                started=float(data["started"]),
                seen=float(data["seen"]),
                queues=None if queues is None else tuple(str(q) for q in queues),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if now - worker.seen <= WORKER_SEEN_WITHIN:
            seen.append(worker)
    return tuple(sorted(seen, key=lambda w: w.started))


def finished_since(queue: JobQueue, since: float) -> Finished:
    """Attempts that ended since ``since``, from the queue's outcome counters (kept whether or
    not finished jobs are)."""
    counts = queue.count_finished(since)
    return Finished(done=counts["done"], retried=counts["retry"], failed=counts["failed"])


def overview(queue: JobQueue) -> Overview:
    """Read everything the overview page shows."""
    now = time.time()
    stats = queue.stats()
    return Overview(
        stats=stats,
        database=queue.url,
        keep_done=queue.keep_done,
        last_hour=finished_since(queue, now - HOUR),
        last_day=finished_since(queue, now - DAY),
        last_run=health.read(queue, health.LAST_RUN),
        self_request=health.read(queue, health.SELF_REQUEST),
        workers=workers_seen(queue, now),
    )
