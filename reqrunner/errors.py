"""The exceptions reqrunner raises, and the ones it records as a job's error.

The tree::

    ReqRunnerError            anything reqrunner itself raises or records on purpose
    ├── JobNotFound           raised: queue.retry / delete / release of an id not in the store
    ├── UnknownJob            recorded: a stored job whose name no registered function carries
    ├── JobInterrupted        recorded: a job whose runner died or was stopped mid-job
    └── StoreError            raised: the job database could not be used

    RunnerStopped             a SystemExit a worker raises inside a running job to stop now

*Recorded* errors are never raised to a caller: the runner writes them as the job's error
(``JobInfo.error.type`` is then ``"reqrunner.UnknownJob"`` or ``"reqrunner.JobInterrupted"``)
and goes on with the next job, as it does for an exception a job function raises.

Bad arguments to the public API are plain ``ValueError`` / ``TypeError`` with a message that says
what is allowed, as in the standard library.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "JobInterrupted",
    "JobNotFound",
    "ReqRunnerError",
    "RunnerStopped",
    "StoreError",
    "UnknownJob",
    "error_type",
]


class ReqRunnerError(Exception):
    """Base class of reqrunner's own exceptions."""


class JobNotFound(ReqRunnerError, LookupError):
    """No job with this id is in the store (it may have finished and been deleted)."""

    def __init__(self, job_id: int) -> None:
        super().__init__(f"no job {job_id} (it may have finished and been deleted)")
        self.job_id = job_id


class UnknownJob(ReqRunnerError, LookupError):
    """A stored job names a function that no ``@queue.job`` in this process registered.

    ``registered`` are the names this process does know; the message suggests the closest.
    """

    def __init__(self, name: str, *, registered: Iterable[str] = ()) -> None:
        close = difflib.get_close_matches(name, list(registered), n=1)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else " (is the module that declares it imported by the app the runner loads?)"
        )
        super().__init__(f"no function is registered as {name!r} in this process{hint}")
        self.name = name


class JobInterrupted(ReqRunnerError):
    """A job's attempt ended with no outcome: its runner was stopped (a signal, an exit) or
    died, and the job was put back or, its attempts spent, failed."""


class StoreError(ReqRunnerError):
    """The job database could not be reached or refused a statement."""


class RunnerStopped(SystemExit):
    """Raised inside a running job to end the process at once (a worker's second signal).

    The runner records the job as interrupted and lets the exit go on, whereas a job's own
    ``sys.exit()`` is recorded as the job's error and the run goes on with the next job.
    """


def error_type(exc_type: type[BaseException]) -> str:
    """How an exception's type is recorded as a job's error: ``module.Name``, a builtin's bare
    name, and reqrunner's own by the name they are imported as (``reqrunner.UnknownJob``)."""
    module = "reqrunner" if exc_type.__module__ == __name__ else exc_type.__module__
    return f"{module}.{exc_type.__qualname__}".removeprefix("builtins.")
