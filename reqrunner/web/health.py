"""How in-request running is doing: the records the middleware keeps, and its live state.

The records (its last in-request run, its last self-request) are written where they happen and
kept in the job database's meta table, so the admin shows every process's latest whichever
process serves the page. :class:`Health` is what only this process knows: its options in force
and its circuit breaker.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import StoreError
from ..triggers import TriggerRun
from ..triggers import last_runs as _last_runs
from .quiet import warn_store

__all__ = ["LAST_RUN", "SELF_REQUEST", "Health", "last_runs", "read", "record"]

logger = logging.getLogger("reqrunner")

LAST_RUN = "reqrunner.health.last_run"
SELF_REQUEST = "reqrunner.health.self_request"


class _Meta(Protocol):
    def get_meta(self, name: str) -> str | None: ...

    def set_meta(self, name: str, value: str) -> None: ...


def record(queue: _Meta, name: str, value: dict[str, object]) -> None:
    """Store ``value`` with the time as record ``name``; a failure is logged, never raised."""
    try:
        queue.set_meta(name, json.dumps({"at": time.time(), **value}))
    except StoreError as exc:
        warn_store(logger, f"could not record {name}", exc)
    except Exception:
        logger.exception("reqrunner could not record %s", name)


def read(queue: _Meta, name: str) -> dict[str, Any] | None:
    """Record ``name``, or ``None`` if there is none or it does not parse (say, one written by
    another version of reqrunner)."""
    raw = queue.get_meta(name)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class _Prefixed(Protocol):
    def get_meta_prefixed(self, prefix: str) -> dict[str, str]: ...


def last_runs(queue: _Prefixed) -> dict[str, TriggerRun]:
    """The latest run of each trigger, by where it came from (``sync``, ``async``, ``js``,
    ``tick``, ``endpoint``, ``admin``, ``cli-run``, ``cli-work``), across all processes: when
    it ended, how many jobs it ran, why it stopped. See :mod:`reqrunner.triggers`."""
    return _last_runs(queue)


@dataclass(frozen=True, kw_only=True, slots=True)
class Health:
    """How this process runs jobs from page views."""

    mode: str
    run_rate: float
    max_jobs: int | None
    max_time: float | None
    breaker_open: bool
    """Whether self-requests are skipped right now after one failed."""
    breaker_error: str | None
    max_memory: int | float | str | None = None
    """The ``max_memory`` bound of a run, as given (percent or a size such as ``"128M"``)."""
