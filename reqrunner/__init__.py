"""reqrunner: run a web site's background jobs from inside its own web requests.

A durable job queue in SQLite, PostgreSQL or MySQL/MariaDB, a bounded runner, and middleware
that drains the queue on the back of ordinary page views, for sites with no cron, no shell and
no worker process; the same jobs move unchanged to a CLI worker when the site grows.
"""

from .context import JobContext
from .errors import JobInterrupted, JobNotFound, ReqRunnerError, StoreError, UnknownJob
from .models import DEFAULT_LIMITS, JobError, JobInfo, JobState, Limits, QueueStats, RunReport
from .queue import JobQueue
from .registry import Job, JobCall

__version__ = "0.1.0"

__all__ = [
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
    "QueueStats",
    "ReqRunnerError",
    "RunReport",
    "StoreError",
    "UnknownJob",
    "__version__",
]
