"""Value objects of the public contract: job states, job snapshots, run reports and limits,
and the record of a worker process seen recently."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "DEFAULT_LIMITS",
    "JobError",
    "JobInfo",
    "JobState",
    "Limits",
    "QueueStats",
    "RunReport",
    "StopReason",
    "WorkerSeen",
]


class JobState(enum.StrEnum):
    """Where a job is in its life. Stored as the lower-case value."""

    WAITING = "waiting"
    """Not claimed by any runner. Due now, or *delayed* when ``available_at`` is in the future
    (a new job, or one waiting out its backoff after a failed attempt)."""

    RESERVED = "reserved"
    """Claimed by one runner, which holds a lease token until ``reserved_until``."""

    DONE = "done"
    """Finished successfully. Only kept when the queue has ``keep_done=True``."""

    FAILED = "failed"
    """Its attempts are spent; kept with the last error until retried, deleted or pruned."""


StopReason = Literal["empty", "max_jobs", "max_time", "max_memory", "stopped"]


@dataclass(frozen=True, kw_only=True, slots=True)
class JobError:
    """The last error a job raised (or the interruption that ended its attempt)."""

    type: str
    message: str
    traceback: str


@dataclass(frozen=True, kw_only=True, slots=True)
class JobInfo:
    """A snapshot of one stored job, as ``queue.get()`` and ``queue.list_jobs()`` return it."""

    id: int
    name: str
    queue: str
    state: JobState
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    attempts: int
    max_attempts: int
    priority: int
    ttr: float
    available_at: datetime
    reserved_until: datetime | None
    progress: float | None
    label: str
    description: str
    error: JobError | None
    history: tuple[dict[str, Any], ...]
    created_at: datetime
    finished_at: datetime | None
    unique_key: str | None = None
    started_at: datetime | None = None
    """When its latest attempt started."""
    result: Any = None
    """The return value (decoded from JSON) of a job that finished with its result kept
    (``result_ttl``); None otherwise. ``result_until`` tells a kept ``None`` from none kept."""
    result_until: datetime | None = None
    """Until when the result (return value or error) is kept; None when none is kept. A
    finished job whose row is deleted (``keep_done=False``) is still found by
    ``queue.get()`` until then."""

    @property
    def delayed(self) -> bool:
        """True for a waiting job whose due time is still in the future."""
        return self.state is JobState.WAITING and self.available_at > datetime.now(
            self.available_at.tzinfo
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueStats:
    """Counts per state and the age of the oldest due job, as ``queue.stats()`` returns them."""

    waiting: int
    """Due now (waiting and not delayed)."""
    delayed: int
    """Waiting for a due time in the future."""
    reserved: int
    failed: int
    done: int
    oldest_due_age: float | None
    """Seconds since the oldest due job became due; ``None`` when nothing is due."""

    @property
    def total(self) -> int:
        return self.waiting + self.delayed + self.reserved + self.failed + self.done


@dataclass(frozen=True, kw_only=True, slots=True)
class RunReport:
    """What one bounded run did and why it stopped."""

    ran: int = 0
    """Jobs started (each counted once, whatever its outcome)."""
    succeeded: int = 0
    retried: int = 0
    """Jobs that raised and were put back to wait out their backoff."""
    failed: int = 0
    """Jobs that raised on their last attempt (or could not run at all) and are now ``failed``."""
    interrupted: int = 0
    """Jobs of dead runners whose expired leases this run found and recovered."""
    elapsed: float = 0.0
    stopped_by: StopReason = "empty"


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkerSeen:
    """A ``reqrunner work`` process that reported recently (its heartbeat in the meta table)."""

    host: str
    pid: int
    started: float
    """When it started (epoch seconds)."""
    seen: float
    """Its last heartbeat (epoch seconds)."""
    queues: tuple[str, ...] | None
    """The queues it takes jobs from; None for all of them."""


_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def _parse_memory(value: int | float | str) -> tuple[float | None, int | None]:
    """Return ``(percent, None)`` or ``(None, bytes)`` for a ``max_memory`` value."""
    if isinstance(value, bool):
        raise TypeError("max_memory must be a percentage (1-100) or a size like '128M', not bool")
    if isinstance(value, int | float):
        if not 0 < value <= 100:
            raise ValueError(
                f"max_memory={value!r}: a number is a percentage of the process's memory limit "
                "and must be above 0 and at most 100; for an absolute size write e.g. '128M'"
            )
        return float(value), None
    if not isinstance(value, str):
        raise TypeError(f"max_memory must be a number or a string like '128M', not {value!r}")
    text = value.strip().upper()
    if text.endswith("%"):
        try:
            return _parse_memory(float(text[:-1]))
        except ValueError:
            pass
    else:
        number, unit = text.rstrip("BKMGT"), text[len(text.rstrip("BKMGT")) :]
        unit = unit[:-1] if len(unit) == 2 and unit.endswith("B") else unit
        if unit in _SIZE_UNITS and number:
            try:
                size = float(number) * _SIZE_UNITS[unit]
            except ValueError:
                size = -1.0
            if size >= 1024 * 1024:
                return None, int(size)
    raise ValueError(
        f"max_memory={value!r} is not understood: give a percentage such as 80 or '80%', "
        "or an absolute size of at least 1M such as '128M', '1.5G' or '512MB'"
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """Bounds of one run, checked between jobs (PKP's ``job_runner_max_*`` settings).

    ``max_jobs`` and ``max_time`` may be ``None`` for no bound (a CLI worker). ``max_memory`` is a
    percentage of the process's effective memory limit (the smallest of the cgroup limit,
    ``RLIMIT_AS`` and physical memory) or an absolute size such as ``"128M"``.
    """

    max_jobs: int | None = 30
    max_time: float | None = 30.0
    max_memory: int | float | str | None = 80
    memory_percent: float | None = field(init=False, repr=False, compare=False)
    memory_bytes: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_jobs is not None:
            if isinstance(self.max_jobs, bool) or not isinstance(self.max_jobs, int):
                raise TypeError(f"max_jobs must be a whole number or None, not {self.max_jobs!r}")
            if self.max_jobs < 1:
                raise ValueError(f"max_jobs={self.max_jobs}: must be at least 1 (or None)")
        if self.max_time is not None:
            if isinstance(self.max_time, bool) or not isinstance(self.max_time, int | float):
                raise TypeError(f"max_time must be seconds as a number, not {self.max_time!r}")
            if not self.max_time > 0:
                raise ValueError(f"max_time={self.max_time}: must be more than 0 seconds")
        percent, size = (None, None) if self.max_memory is None else _parse_memory(self.max_memory)
        object.__setattr__(self, "memory_percent", percent)
        object.__setattr__(self, "memory_bytes", size)


DEFAULT_LIMITS = Limits()
