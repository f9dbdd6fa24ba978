"""The backend's ``OPTIONS``, checked once, and the ``JobQueue`` each ``QUEUE`` names."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..queue import JobQueue
from ..runner import JobFunction

__all__ = ["DEFAULT_RESULT_TTL", "BackendOptions", "queue_for"]

DEFAULT_RESULT_TTL = 86400.0
_KNOWN = ("QUEUE", "RESULT_TTL", "ENQUEUE_ON_COMMIT", "MAX_ATTEMPTS")


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """``OPTIONS`` of a ``ReqrunnerBackend`` entry in ``TASKS``."""

    queue: str | None = None
    """``"module:attr"`` naming a ``JobQueue``; None: ``JobQueue()`` (``REQRUNNER_DATABASE_URL``
    or ``./reqrunner.sqlite3``)."""
    result_ttl: float = DEFAULT_RESULT_TTL
    """Seconds a finished task's result is kept for ``get_result``."""
    enqueue_on_commit: bool = True
    """Inside ``transaction.atomic()``, store the task only when the transaction commits."""
    max_attempts: int = 1
    """Runs of a task that raises before it is FAILED (Django's tasks run once by default)."""

    @classmethod
    def parse(cls, alias: str, options: Mapping[str, Any]) -> BackendOptions:
        """Checked options; ``ValueError`` / ``TypeError`` saying what to write."""
        where = f"TASKS[{alias!r}]['OPTIONS']"
        if not isinstance(options, Mapping):
            raise TypeError(f"{where} must be a dict, not {options!r}")
        unknown = sorted(set(options) - set(_KNOWN))
        if unknown:
            raise ValueError(f"{where}: unknown option(s) {unknown}; known: {list(_KNOWN)}")
        spec = options.get("QUEUE")
        if spec is not None and (not isinstance(spec, str) or spec.count(":") != 1):
            raise ValueError(
                f"{where}['QUEUE'] = {spec!r}: write 'module:attr', the module and the name of "
                "your reqrunner.JobQueue (as for reqrunner --app), e.g. 'mysite.jobs:queue'"
            )
        ttl = options.get("RESULT_TTL", DEFAULT_RESULT_TTL)
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(
                f"{where}['RESULT_TTL'] = {ttl!r}: seconds or a timedelta above 0 for how long "
                "get_result() can see a finished task"
            )
        on_commit = options.get("ENQUEUE_ON_COMMIT", True)
        if not isinstance(on_commit, bool):
            raise TypeError(f"{where}['ENQUEUE_ON_COMMIT'] is True or False, not {on_commit!r}")
        attempts = options.get("MAX_ATTEMPTS", 1)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"{where}['MAX_ATTEMPTS'] = {attempts!r}: a whole number, 1 or more")
        return cls(spec, float(seconds), on_commit, attempts)


_queues: dict[str | None, JobQueue] = {}
_lock = threading.Lock()


def queue_for(spec: str | None, resolver: Callable[[str], JobFunction | None]) -> JobQueue:
    """The ``JobQueue`` that ``spec`` names, one per process (Django makes a backend per
    thread), with ``resolver`` added to it once so its runners find the tasks."""
    with _lock:
        queue = _queues.get(spec)
        if queue is None:
            queue = JobQueue() if spec is None else _import(spec)
            queue.add_resolver(resolver)
            _queues[spec] = queue
        return queue


def _import(spec: str) -> JobQueue:
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"OPTIONS['QUEUE'] = {spec!r} could not be loaded: {exc}") from exc
    if not isinstance(obj, JobQueue):
        raise TypeError(
            f"OPTIONS['QUEUE'] = {spec!r} is a {type(obj).__name__}, not a reqrunner.JobQueue"
        )
    return obj
