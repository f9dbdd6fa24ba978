"""The lease an in-request run holds: one of ``max_concurrent_runs`` across all processes.

Held for the whole run and renewed by a thread of its own every third of its TTL, so that a job
that outlives the TTL (2 × ``max_time``) does not let another run start beside it. A run whose
renewal finds the lease taken over stops after its current job.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..queue import JobQueue

__all__ = ["LEASE_PREFIX", "RunLease"]

logger = logging.getLogger("reqrunner")

LEASE_PREFIX = "reqrunner.run."
"""The names of the run leases: the prefix and the slot's number."""


class RunLease:
    """A held run lease; ``with`` it to keep it renewed, and released at the end."""

    def __init__(self, queue: JobQueue, name: str, token: str, ttl: float) -> None:
        self.queue = queue
        self.name = name
        self.token = token
        self.ttl = ttl
        self.lost = False
        """True once a renewal found the lease held by someone else."""
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def take(cls, queue: JobQueue, slots: int, ttl: float) -> RunLease | None:
        """The first free lease of ``slots``, or None when every one is held (blocking)."""
        for slot in range(slots):
            name = f"{LEASE_PREFIX}{slot}"
            token = queue.acquire_lease(name, ttl)
            if token is not None:
                return cls(queue, name, token, ttl)
        return None

    def __enter__(self) -> RunLease:
        self._thread = threading.Thread(target=self._keep, name="reqrunner-run-lease", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.queue.release_lease(self.name, self.token)

    def _keep(self) -> None:
        interval = max(0.05, self.ttl / 3)
        while not self._done.wait(interval):
            try:
                if not self.queue.renew_lease(self.name, self.token, self.ttl):
                    self.lost = True
                    logger.warning("reqrunner's run lease %s was taken over", self.name)
                    return
            except Exception:
                # The database may be back before the lease runs out: keep trying.
                logger.warning("reqrunner could not renew its run lease", exc_info=True)
