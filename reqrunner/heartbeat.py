"""The heartbeat of a runner's claimed batch: its jobs' leases renewed while they run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from .store.operations import Claimed, Store

__all__ = ["Heartbeat"]

log = logging.getLogger("reqrunner.runner")


class Heartbeat:
    """Renews the leases of the batch a runner holds while its jobs run longer than a beat."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._token: str | None = None
        self._interval = 60.0
        self._wake = threading.Event()
        self._done = False
        self._thread: threading.Thread | None = None

    def hold(self, batch: Sequence[Claimed]) -> None:
        self._token = batch[0].token
        # A third of the shortest lease leaves two beats' slack for a slow database.
        self._interval = max(0.05, min(job.ttr for job in batch) / 3)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._beat, name="reqrunner-heartbeat", daemon=True
            )
            self._thread.start()
        else:
            self._wake.set()

    def drop(self) -> None:
        self._token = None

    def stop(self) -> None:
        self._done = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        while True:
            woken = self._wake.wait(self._interval)
            self._wake.clear()
            if self._done:
                return
            token = self._token
            # Woken by a new batch: its leases were just set by the claim, nothing to renew.
            if woken or token is None:
                continue
            try:
                self._store.renew(token)
            except Exception:
                log.exception("could not renew job leases")
