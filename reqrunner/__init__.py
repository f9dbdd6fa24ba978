"""reqrunner: run a web site's background jobs from inside its own web requests.

A durable job queue in SQLite, PostgreSQL or MySQL/MariaDB, a bounded runner, and middleware
that drains the queue on the back of ordinary page views, for sites with no cron, no shell and
no worker process; the same jobs move unchanged to a CLI worker when the site grows.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .context import JobContext
from .errors import JobInterrupted, JobNotFound, ReqRunnerError, StoreError, UnknownJob
from .jobs import Job, JobCall
from .models import DEFAULT_LIMITS, JobError, JobInfo, JobState, Limits, QueueStats, RunReport
from .queue import JobQueue

if TYPE_CHECKING:
    from .web.admin import BasicAuth
    from .web.asgi import ASGIMiddleware
    from .web.policy import PageView
    from .web.wsgi import WSGIMiddleware

__version__ = "0.1.0"

__all__ = [
    "ASGIMiddleware",
    "BasicAuth",
    "DEFAULT_LIMITS",
    "Job",
    "JobCall",
    "JobContext",
    "JobError",
    "JobInfo",
    "JobInterrupted",
    "JobNotFound",
    "JobQueue",
    "JobState",
    "Limits",
    "PageView",
    "QueueStats",
    "ReqRunnerError",
    "RunReport",
    "StoreError",
    "UnknownJob",
    "WSGIMiddleware",
    "__version__",
]

# The web side (anyio, httpx, the admin pages) loads on first use, so that a CLI worker or a
# cron run that only runs jobs starts without it.
_LAZY = {
    "ASGIMiddleware": ".web.asgi",
    "WSGIMiddleware": ".web.wsgi",
    "PageView": ".web.policy",
    "BasicAuth": ".web.admin",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reqrunner' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
