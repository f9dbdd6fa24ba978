"""After-response work in a thread of the worker process, and what happens to it at exit.

The WSGI adapter hands a run to a thread from the response's ``close()``: done inside
``close()`` itself, the run would hold the worker (see :mod:`reqrunner.web.wsgi`). The threads
are daemons so that a stuck job never keeps a worker alive forever; at exit they are asked to
stop after their current job and given :data:`SHUTDOWN_GRACE` seconds for it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable

from ..deferred import ordinary

__all__ = ["SHUTDOWN_GRACE", "call_safely", "run_in_background", "stopping"]

logger = logging.getLogger("reqrunner")

SHUTDOWN_GRACE = 20.0
"""Seconds a stopping process waits for a background run to finish its current job (under
gunicorn's default 30 s ``graceful_timeout``, so the worker exits on its own)."""

_stopping = threading.Event()
_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_finishing: weakref.WeakKeyDictionary[threading.Thread, float] = weakref.WeakKeyDictionary()
_threads_lock = threading.Lock()


def stopping() -> bool:
    """Whether this process is exiting, so a run should stop after its current job."""
    return _stopping.is_set()


def call_safely(work: Callable[[], None]) -> None:
    """Run after-response ``work`` (blocking); what it raises is logged, never raised.

    Its jobs' own ``after_response`` dispatches are ordinary ones: no response follows them.
    """
    ordinary()
    try:
        work()
    except Exception:
        logger.exception("reqrunner's after-response work failed")


def run_in_background(work: Callable[[], None], *, wait_at_exit: float | None = None) -> None:
    """Start ``work`` in a thread of this process, waited for (boundedly) at exit.

    ``wait_at_exit``: the process serves one request and exits (CGI, ``wsgi.run_once``), so its
    exit is not a shutdown: the work is let finish, within that many seconds.
    """
    thread = threading.Thread(target=call_safely, args=(work,), name="reqrunner-run", daemon=True)
    with _threads_lock:
        if wait_at_exit is not None:
            _finishing[thread] = wait_at_exit
        else:
            _threads.add(thread)
    thread.start()


@atexit.register
def _wait_for_runs() -> None:
    # A one-request (CGI) process's run is what that process is for: wait for it. At any other
    # exit, ask the runs to stop after their current job and give that job SHUTDOWN_GRACE.
    with _threads_lock:
        finishing = list(_finishing.items())
        threads = list(_threads)
    for thread, bound in finishing:
        thread.join(bound)
    _stopping.set()
    deadline = time.monotonic() + SHUTDOWN_GRACE
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
