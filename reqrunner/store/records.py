"""The records the store takes and returns: a job to insert, a claimed job, an outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

__all__ = [
    "HISTORY_KEEP",
    "Ack",
    "Claimed",
    "CycleResult",
    "NewJob",
    "history_with",
    "storable",
]

#: Keep this many entries of a job's attempt history.
HISTORY_KEEP = 20


class NewJob(NamedTuple):
    """One row to insert, its fields named after the columns they fill (a tuple, so a chunk of
    them flattens straight into a multi-row INSERT's parameters)."""

    name: str
    queue: str
    state: str
    priority: int
    payload: str
    available_at: float
    attempts: int
    max_attempts: int
    ttr: float
    backoff: float
    unique_slot: str | None
    """The hash of the unique key, or None."""
    unique_key: str | None
    created_at: float


@dataclass(slots=True)
class Claimed:
    """A job this runner holds a lease on, built from a claim's row by column name."""

    token: str
    """The claim's token: every write about the job is fenced by it."""
    id: int
    name: str
    queue: str
    payload: str
    attempts: int
    """Attempts including this one."""
    max_attempts: int
    ttr: float
    backoff: float
    priority: int
    available_at: float
    history: str | None


@dataclass(frozen=True, slots=True)
class Ack:
    """The outcome of one claimed job, written in the runner's next cycle.

    ``kind``: ``done``; ``retry`` (back to waiting at ``available_at``); ``failed``;
    ``release`` (claimed but never started: back to waiting, the attempt not counted).
    A ``done`` or ``failed`` outcome with ``keep_for`` > 0 also keeps the job's result (the
    JSON return value ``value``, or the error) for that many seconds.
    """

    job_id: int
    token: str
    kind: Literal["done", "retry", "failed", "release"]
    available_at: float = 0.0
    error: tuple[str, str, str] | None = None
    history: str | None = None
    value: str | None = None
    keep_for: float = 0.0


@dataclass(slots=True)
class CycleResult:
    """What one cycle did: the jobs it claimed and the leases it found expired or lost."""

    claimed: list[Claimed] = field(default_factory=list)
    interrupted: int = 0
    lost: int = 0
    """Acks that changed nothing because the lease had been taken over."""


def history_with(history: str | None, entry: dict[str, Any]) -> str:
    """The JSON attempt history with ``entry`` appended (the oldest dropped past the cap)."""
    entries: list[dict[str, Any]] = json.loads(history) if history else []
    entries.append(entry)
    return json.dumps(entries[-HISTORY_KEEP:], separators=(",", ":"))


def storable(text: str) -> str:
    """``text`` as every database stores it and every log writes it: a lone surrogate (what
    ``os.fsdecode`` makes of an undecodable byte) as its ``\\udcxx`` escape, and NUL, which
    PostgreSQL's text refuses, as ``\\x00``."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
