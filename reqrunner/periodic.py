"""Periodic jobs: ``@queue.periodic("*/15 * * * *")`` and ``@queue.periodic(every=3600)``.

A schedule names *slots*: the times its cron expression matches in its time zone (parsed and
walked by cronsim, which follows cron's rules across daylight-saving changes), or the multiples
of ``every`` seconds since the epoch, so that every process computes the same slots. Whatever
runs jobs (a page view's run, the tick URL, ``reqrunner run`` and ``work``, ``queue.run()``)
first asks :meth:`Periodic.fire` to dispatch the slots that have come; the store takes each
slot once across all processes (``store/schedules.py``).

Each process remembers when the next slot of each schedule comes, so "is anything due?" costs
no query until then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from . import payload
from .store.records import NewJob
from .store.schedules import Plan, Slots

if TYPE_CHECKING:
    from .jobs import Job

__all__ = ["MAX_CATCH_UP", "CatchUp", "Periodic", "Schedule", "ScheduleInfo"]

log = logging.getLogger("reqrunner.periodic")

CatchUp = Literal["one", "skip", "all"]
"""What the slots missed during a quiet period become: one run (``one``), none (``skip``),
or one run each (``all``, at most :data:`MAX_CATCH_UP`)."""

_NO_ARGUMENTS = payload.encode((), {})

MAX_CATCH_UP = 100
"""``catch_up="all"`` runs at most this many missed slots (the latest ones)."""

_CRON_HELP = (
    "a five-field cron expression 'minute hour day-of-month month day-of-week', "
    "e.g. '*/15 * * * *' (every 15 minutes) or '0 3 * * mon' (Mondays at 03:00)"
)


@dataclass(frozen=True, slots=True, eq=False)
class Schedule:
    """One periodic job: when its slots come and what its missed slots become."""

    job: Job[Any, Any]
    cron: str | None
    every: float | None
    tz: ZoneInfo
    catch_up: CatchUp = "one"
    overlap: bool = False

    @classmethod
    def of(cls, job: Job[Any, Any], spec: Spec) -> Schedule:
        """The schedule of ``job`` as :func:`parse` checked it; a TypeError if the job's
        function needs arguments (a periodic job gets none, or only its context)."""
        required = [
            p.name
            for p in job.signature.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            raise TypeError(
                f"a periodic job takes no arguments (or only a JobContext); "
                f"{job.name} requires {', '.join(required)}"
            )
        return cls(job, *spec)

    @property
    def name(self) -> str:
        """The schedule's name: its job's name."""
        return self.job.name

    @property
    def expression(self) -> str:
        """How the schedule reads: the cron expression and zone, or ``every N s``."""
        if self.cron is not None:
            return f"{self.cron} ({self.tz.key})"
        return f"every {_seconds(self.every or 0)}"

    def next_after(self, t: float) -> float:
        """The first slot strictly after epoch time ``t``."""
        if self.every is not None:
            return (t // self.every + 1) * self.every
        return next(CronSim(self.cron or "", datetime.fromtimestamp(t, self.tz))).timestamp()

    def last_at_or_before(self, t: float) -> float:
        """The latest slot at or before ``t``."""
        if self.every is not None:
            return (t // self.every) * self.every
        return self._back(t, 1)

    def due(self, last: float, now: float) -> list[float]:
        """The slots after ``last`` up to ``now``: the latest :data:`MAX_CATCH_UP` + 1 of them."""
        slots: list[float] = []
        if self.every is not None:
            first = self.next_after(last)
            if first > now:
                return []
            count = int((now - first) // self.every) + 1
            skip = max(0, count - MAX_CATCH_UP - 1)
            return [first + (i + skip) * self.every for i in range(count - skip)]
        t = self.next_after(last)
        # A cron schedule is walked from the far end once the gap is long, not slot by slot.
        if t <= now and self.next_after(t) <= now:
            t = max(t, self._back(now, MAX_CATCH_UP + 1))
        while t <= now:
            slots.append(t)
            t = self.next_after(t)
        return slots[-(MAX_CATCH_UP + 1) :]

    def _back(self, now: float, count: int) -> float:
        # The count-th slot at or before now, walking backwards (cronsim's reverse walk starts
        # strictly before the time it is given, hence the millisecond).
        it = CronSim(self.cron or "", datetime.fromtimestamp(now + 0.001, self.tz), reverse=True)
        t = now
        for _ in range(count):
            t = next(it).timestamp()
        return t

    def interval(self) -> float:
        """The shortest gap between two slots (for a cron schedule, over the coming week's
        first few slots): how often something must run jobs for this schedule to keep time."""
        if self.every is not None:
            return self.every
        now = time.time()
        t = self.next_after(now)
        gaps = []
        for _ in range(24):
            following = self.next_after(t)
            gaps.append(following - t)
            t = following
        return min(gaps)

    def label(self, slot: float) -> str:
        """The slot as the dispatched job shows it: its key, and its description until the job
        describes itself."""
        return f"periodic slot {_iso(slot, self.tz)}"

    def plan(self, last: float, running: bool, now: float) -> Plan | None:
        """What the slots due since ``last`` become, or None when none is due."""
        slots = self.due(last, now)
        if not slots:
            return None
        if running and not self.overlap:
            return Plan(slots[-1], (), "overlap")
        if self.catch_up == "all":
            taken = slots[-MAX_CATCH_UP:]
        elif self.catch_up == "skip" and len(slots) > 1:
            taken = []
        else:
            taken = slots[-1:]
        jobs = [(self._row(slot, now), self.label(slot)) for slot in taken]
        return Plan(slots[-1], jobs, "dispatched" if jobs else "skipped")

    def _row(self, slot: float, now: float) -> NewJob:
        # The job's key is its slot, kept whatever the job writes in its description (the
        # database has taken the slot once already: no unique index is needed on top).
        opts = self.job.options
        return NewJob(
            opts.name, opts.queue, "waiting", opts.priority, _NO_ARGUMENTS, slot, 0, opts.attempts,
            float(opts.ttr), float(opts.backoff), None, self.label(slot), now,
        )  # fmt: skip


Spec = tuple[str | None, float | None, ZoneInfo, CatchUp, bool]
"""A checked declaration: cron, every, zone, catch_up, overlap."""


def parse(
    cron: str | None,
    every: float | timedelta | None,
    tz: str | ZoneInfo | None,
    catch_up: CatchUp = "one",
    overlap: bool = False,
) -> Spec:
    """Check a schedule's declaration; a ValueError or TypeError says what a good one is."""
    zone = _zone(tz)
    if catch_up not in ("one", "skip", "all"):
        raise ValueError(f"catch_up={catch_up!r}: write 'one' (the default), 'skip' or 'all'")
    if not isinstance(overlap, bool):
        raise TypeError(f"overlap is True or False, not {overlap!r}")
    if (cron is None) == (every is None):
        raise TypeError(
            "@queue.periodic takes a cron expression or every=..., exactly one: "
            "@queue.periodic('0 3 * * *') or @queue.periodic(every=timedelta(hours=1))"
        )
    if cron is not None:
        if not isinstance(cron, str):
            raise TypeError(f"the schedule is {_CRON_HELP}, not {cron!r}")
        try:
            CronSim(cron, datetime.now(zone))
        except CronSimError as exc:
            raise ValueError(f"{cron!r} is not a schedule ({exc}); write {_CRON_HELP}") from None
        return cron, None, zone, catch_up, overlap
    seconds = every.total_seconds() if isinstance(every, timedelta) else every
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"every is seconds or a timedelta, not {every!r}")
    if not seconds > 0:
        raise ValueError(
            f"every={every!r}: the interval must be more than 0, e.g. every=timedelta(hours=1) "
            "or every=300"
        )
    return None, float(seconds), zone, catch_up, overlap


def _zone(tz: str | ZoneInfo | None) -> ZoneInfo:
    if tz is None:
        return ZoneInfo("UTC")
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"tz={tz!r} is not a time zone; give an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleInfo:
    """A schedule as the admin and ``reqrunner periodic`` show it."""

    name: str
    expression: str
    queue: str
    next_slot: datetime
    last_slot: datetime | None
    """The latest slot taken (dispatched, skipped or, at first, the slot it started in)."""
    last_outcome: str | None
    """What became of it: ``dispatched``, ``skipped``, ``overlap`` or ``started``."""
    last_job_id: int | None
    last_job_state: str | None
    """The last dispatched job's state, ``finished`` once it is gone (deleted when done)."""


class Periodic:
    """A queue's schedules and what this process knows of their next slots."""

    def __init__(self, slots: Slots, on_dispatch: Callable[[], None]) -> None:
        self._slots = slots
        self._on_dispatch = on_dispatch
        self._schedules: dict[str, Schedule] = {}
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self.clock: Callable[[], float] = time.time
        """The time now, in epoch seconds (tests set a clock of their own)."""
        self._started: float | None = None
        self._next: float | None = None
        self._loaded = False

    @property
    def started(self) -> float:
        """When this process first looked at its schedules: a schedule with no row yet counts
        the slot of that moment as taken, so a new schedule starts with its next slot."""
        if self._started is None:
            self._started = self.clock()
        return self._started

    @property
    def schedules(self) -> Mapping[str, Schedule]:
        return dict(self._schedules)

    def add(self, schedule: Schedule) -> None:
        with self._lock:
            self._schedules[schedule.name] = schedule
            self._next = None

    def next_at(self) -> float | None:
        """When the next slot of any schedule comes (epoch seconds), None without schedules.

        Known from memory after the first call, which reads the schedules' rows once.
        """
        if not self._schedules:
            return None
        with self._lock:
            if self._next is not None:
                return self._next
        if not self._loaded:
            rows = self._slots.load()
            for name, schedule in list(self._schedules.items()):
                if name not in rows:
                    # A new schedule: its first look is stored at once, so that every process
                    # counts its slots from the same moment.
                    start = schedule.last_at_or_before(self.started)
                    rows[name] = self._slots.take(name, start, lambda last, running: None)[0]
            with self._lock:
                for name, row in rows.items():
                    self._last[name] = max(self._last.get(name, row.slot), row.slot)
                self._loaded = True
        with self._lock:
            self._next = min(
                s.next_after(self._last.get(name, s.last_at_or_before(self.started)))
                for name, s in self._schedules.items()
            )
            return self._next

    def is_due(self, now: float | None = None) -> bool:
        """Whether a slot has come that this process has not seen taken."""
        at = self.next_at()
        return at is not None and at <= (self.clock() if now is None else now)

    def fire(self, now: float | None = None) -> list[int]:
        """Dispatch the slots that have come (once across all processes); the new job ids."""
        now = self.clock() if now is None else now
        if not self.is_due(now):
            return []
        dispatched: list[int] = []
        for name, schedule in list(self._schedules.items()):
            last = self._last.get(name)
            if last is not None and schedule.next_after(last) > now:
                continue
            start = schedule.last_at_or_before(self.started)
            row, ids = self._slots.take(name, start, partial(schedule.plan, now=now))
            dispatched.extend(ids)
            with self._lock:
                self._last[name] = max(self._last.get(name, row.slot), row.slot)
                self._next = None
            if ids:
                log.info("periodic %s: dispatched job(s) %s", name, ids)
        if dispatched:
            self._on_dispatch()
        return dispatched

    def describe(self) -> list[ScheduleInfo]:
        """Each declared schedule with its next slot and its last, read from the database."""
        self.next_at()  # a first look at a new schedule is stored, as a run's would be
        rows = self._slots.load()
        states = self._slots.job_states([r.job_id for r in rows.values() if r.job_id is not None])
        now = self.clock()
        found = []
        for name, schedule in sorted(self._schedules.items()):
            row = rows.get(name)
            last = row.slot if row else schedule.last_at_or_before(self.started)
            job_id = row.job_id if row else None
            found.append(
                ScheduleInfo(
                    name=name,
                    expression=schedule.expression,
                    queue=schedule.job.options.queue,
                    next_slot=_dt(schedule.next_after(max(last, now) if row is None else last)),
                    last_slot=_dt(row.slot) if row else None,
                    last_outcome=row.outcome if row else None,
                    last_job_id=job_id,
                    last_job_state=None if job_id is None else states.get(job_id, "finished"),
                )
            )
        return found

    def tightest_interval(self) -> float | None:
        """The shortest interval of any schedule, None without schedules."""
        return min((s.interval() for s in self._schedules.values()), default=None)


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _iso(t: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")


def _seconds(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"
