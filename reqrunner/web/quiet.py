"""Warnings said once, then at most once a minute: a job database that is down or read-only
must not write a traceback per page view into the site's log."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["REPEAT_EVERY", "Throttle", "warn_store"]

REPEAT_EVERY = 60.0
"""Seconds before the same warning is written again."""


class Throttle:
    """Writes a warning per ``key`` at most every ``every`` seconds, counting the rest."""

    def __init__(
        self, *, every: float = REPEAT_EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, logger: logging.Logger, key: str, message: str, *args: object) -> bool:
        """Log ``message % args`` as a warning unless ``key`` was logged within ``every``
        seconds; whether it was logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.every:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            message += f" ({held} more like it in the last {self.every:.0f} s)"
        logger.warning(message, *args)
        return True


_THROTTLE = Throttle()


def warn_store(
    logger: logging.Logger, what: str, error: BaseException, throttle: Throttle | None = None
) -> None:
    """Say, at most once a minute per ``what`` (per ``throttle``: the middleware's own, else
    the process's), that the job database failed it."""
    (throttle or _THROTTLE).warn(logger, what, "reqrunner %s: %s", what, error)
