"""What a running job knows about itself, and how it reports progress."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store.operations import Store

__all__ = ["JobContext"]

log = logging.getLogger("reqrunner.runner")


class JobContext:
    """Given to a job function that declares a ``ctx: reqrunner.JobContext`` parameter.

    ``progress()`` and ``describe()`` are written to the job database at once, so the Queue
    Manager shows them while the job runs; ``progress()`` also renews the job's lease.
    """

    __slots__ = ("_store", "_token", "attempt", "job_id", "lost", "max_attempts", "name", "queue")

    def __init__(
        self,
        store: Store,
        token: str,
        *,
        job_id: int,
        name: str,
        queue: str,
        attempt: int,
        max_attempts: int,
    ) -> None:
        self._store = store
        self._token = token
        self.job_id = job_id
        self.name = name
        self.queue = queue
        self.attempt = attempt
        """This attempt's number, 1 for the first run."""
        self.max_attempts = max_attempts
        self.lost = False
        """True once the job's lease was found taken over (an admin released it, or this
        runner stalled past its ``ttr``): its outcome will not be recorded."""

    def __repr__(self) -> str:
        return f"<JobContext job {self.job_id} {self.name} attempt {self.attempt}>"

    def progress(self, fraction: float, label: str = "") -> None:
        """Record how far the job is (0.0 to 1.0) with an optional short label."""
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise TypeError(f"progress fraction must be a number from 0 to 1, not {fraction!r}")
        if not (math.isfinite(fraction) and 0 <= fraction <= 1):
            raise ValueError(f"progress fraction {fraction!r} is outside 0.0 to 1.0")
        if not isinstance(label, str):
            raise TypeError(f"progress label must be a string, not {label!r}")
        self._written(self._store.progress(self.job_id, self._token, float(fraction), label))

    def describe(self, text: str) -> None:
        """Set the human-readable description shown for this job in the Queue Manager."""
        if not isinstance(text, str):
            raise TypeError(f"describe() takes a string, not {text!r}")
        self._written(self._store.describe(self.job_id, self._token, text))

    def _written(self, held: bool) -> None:
        if not held and not self.lost:
            self.lost = True
            log.warning(
                "job %s %s: its lease was taken over; it no longer owns the job",
                self.job_id,
                self.name,
            )
