"""Django's ``TaskResult`` built from what reqrunner stores about a job."""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any

from ..models import JobInfo, JobState
from .compat import TaskError, TaskResult, TaskResultStatus, set_return_value

__all__ = [
    "WORKER_PREFIX",
    "errors_of",
    "from_info",
    "new_result",
    "set_return_value",
    "worker_id",
]

#: A running task's description names the worker running it, so that ``worker_ids`` can.
WORKER_PREFIX = "worker "

_STATUS = {
    JobState.WAITING: "READY",
    JobState.RESERVED: "RUNNING",
    JobState.DONE: "SUCCESSFUL",
    JobState.FAILED: "FAILED",
}


def worker_id() -> str:
    """This process, as ``worker_ids`` name it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


def new_result(
    task: Any, result_id: str, args: Any, kwargs: Any, *, alias: str, now: datetime
) -> Any:
    """The ``TaskResult`` an enqueue returns: READY, enqueued now."""
    return TaskResult(
        task=task,
        id=result_id,
        status=TaskResultStatus.READY,
        enqueued_at=now,
        started_at=None,
        last_attempted_at=None,
        finished_at=None,
        args=list(args),
        kwargs=dict(kwargs),
        backend=alias,
        errors=[],
        worker_ids=[],
    )


def _class_path(kind: str) -> str:
    # reqrunner names builtins bare ("ValueError"); Django imports the path it is given.
    return kind if "." in kind else f"builtins.{kind}"


def errors_of(info: JobInfo) -> list[Any]:
    """One ``TaskError`` per attempt that raised or was interrupted: the attempt history has
    each one's type and message, and the last error its whole traceback."""
    errors: list[Any] = []
    entries = [e for e in info.history if e.get("outcome") in ("raised", "interrupted")]
    for entry in entries:
        text = str(entry.get("error", ""))
        kind = text.partition(":")[0] if entry.get("outcome") == "raised" else ""
        errors.append(
            TaskError(
                exception_class_path=_class_path(kind or "reqrunner.JobInterrupted"),
                traceback=text,
            )
        )
    if info.error is not None and info.state is JobState.FAILED:
        last = TaskError(
            exception_class_path=_class_path(info.error.type),
            traceback=info.error.traceback or f"{info.error.type}: {info.error.message}",
        )
        if errors:
            errors[-1] = last
        else:
            errors.append(last)
    return errors


def from_info(
    task: Any, result_id: str, info: JobInfo, alias: str, *, status: str | None = None
) -> Any:
    """The ``TaskResult`` of a stored job (``status`` overrides the stored state's)."""
    worker = info.description.removeprefix(WORKER_PREFIX) if info.description else ""
    attempts = info.attempts
    result = TaskResult(
        task=task,
        id=result_id,
        status=TaskResultStatus[status or _STATUS[info.state]],
        enqueued_at=info.created_at,
        started_at=info.started_at,
        last_attempted_at=info.started_at,
        finished_at=info.finished_at,
        args=list(info.args),
        kwargs=dict(info.kwargs),
        backend=alias,
        errors=errors_of(info),
        # One entry per attempt, so that TaskContext.attempt is reqrunner's attempt; the
        # worker of the latest attempt is the one recorded.
        worker_ids=[worker or "unrecorded"] * attempts,
    )
    if info.state is JobState.DONE:
        set_return_value(result, info.result)
    return result
