"""``ReqrunnerBackend``: Django's ``TASKS`` backend that stores tasks in a reqrunner queue,
for page views (or ``reqrunner work``) to run."""

from __future__ import annotations

import importlib
import inspect
import uuid
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from ..jobs import Job, JobOptions
from ..queue import JobQueue
from ..runner import JobFunction
from . import results
from .compat import BaseTaskBackend, Task, TaskResultDoesNotExist, task_enqueued
from .options import BackendOptions, queue_for
from .running import TaskJob, Unimportable

__all__ = ["ReqrunnerBackend"]

#: The id of a task enqueued inside a transaction starts with this: its job does not exist
#: until the commit, so it is found by a key of its own rather than the job's id.
COMMIT_KEY_PREFIX = "c"


def _any_arguments(*args: Any, **kwargs: Any) -> None:
    """Stands in for the task's function when storing: its arguments are checked before."""


class ReqrunnerBackend(BaseTaskBackend):  # type: ignore[misc]
    """Stores Django tasks as reqrunner jobs; results are kept for ``RESULT_TTL``.

    ``OPTIONS``: ``QUEUE`` (``"module:attr"`` of a ``JobQueue``; default ``JobQueue()``),
    ``RESULT_TTL`` (seconds or a timedelta, a day by default), ``ENQUEUE_ON_COMMIT`` (True),
    ``MAX_ATTEMPTS`` (1). Django's priorities (−100 to 100) are reqrunner's, higher first.
    """

    supports_defer = True
    supports_priority = True
    supports_get_result = True
    supports_async_task = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.reqrunner_options = BackendOptions.parse(alias, self.options)
        self.queue: JobQueue = queue_for(self.reqrunner_options.queue, resolve)
        """The reqrunner queue the tasks are stored in (what ``wsgi.py`` wraps with)."""

    # -- enqueue ----------------------------------------------------------------------------------

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        _check_arguments(task, args, kwargs)
        now = datetime.now(UTC)
        if self.reqrunner_options.enqueue_on_commit and _in_atomic_block():
            key = COMMIT_KEY_PREFIX + uuid.uuid4().hex
            result = results.new_result(task, key, args, kwargs, alias=self.alias, now=now)
            # The job is stored (and task_enqueued sent) only if the transaction commits.
            transaction.on_commit(lambda: self._store(task, args, kwargs, key, result))
            return result
        job_id = self._store(task, args, kwargs, None, None)
        result = results.new_result(task, str(job_id), args, kwargs, alias=self.alias, now=now)
        task_enqueued.send(type(self), task_result=result)
        return result

    def _store(self, task: Any, args: Any, kwargs: Any, key: str | None, result: Any | None) -> int:
        options = self.reqrunner_options
        job = Job(
            self.queue,
            _any_arguments,
            JobOptions(
                name=task.module_path,
                queue=task.queue_name,
                priority=int(task.priority),
                attempts=options.max_attempts,
                result_ttl=options.result_ttl,
            ),
        )
        delay = 0.0
        if task.run_after is not None:
            run_after = task.run_after
            now = datetime.now(run_after.tzinfo) if run_after.tzinfo else datetime.now()
            delay = max(0.0, (run_after - now).total_seconds())
        job_id = job.using(delay=delay, unique_key=key).dispatch(*args, **kwargs)
        if result is not None:
            task_enqueued.send(type(self), task_result=result)
        return job_id

    # -- results ----------------------------------------------------------------------------------

    def get_result(self, result_id: str) -> Any:
        info = None
        if isinstance(result_id, str) and result_id.isdigit():
            info = self.queue.get(int(result_id))
        elif isinstance(result_id, str) and result_id.startswith(COMMIT_KEY_PREFIX):
            info = self.queue.get_by_key(result_id)
        task = None if info is None else resolve_task(info.name)
        if info is None or task is None:
            raise TaskResultDoesNotExist(result_id)
        task = task.using(priority=info.priority, queue_name=info.queue)
        return results.from_info(task, result_id, info, self.alias)


def resolve(name: str) -> JobFunction | None:
    """The queue's resolver: a stored job names its Django task by the task's
    ``module_path``, imported here on first use in this process. None when the name is not
    a task's of this backend (the job then fails as an unknown job, naming it)."""
    module_name, _, attr = name.rpartition(".")
    if not module_name:
        return None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            return None
        return Unimportable(name, exc)
    except Exception as exc:
        return Unimportable(name, exc)
    found = getattr(module, attr, None)
    if not isinstance(found, Task):
        return None
    backend = found.get_backend()
    if not isinstance(backend, ReqrunnerBackend):
        return None
    return TaskJob(found, backend)


def resolve_task(name: str) -> Any | None:
    """The Django ``Task`` stored under ``name`` (its ``module_path``), if it is one."""
    found = resolve(name)
    return found.task if isinstance(found, TaskJob) else None


def _check_arguments(task: Any, args: Any, kwargs: Any) -> None:
    sig = inspect.signature(task.func)
    params = list(sig.parameters.values())[1 if task.takes_context else 0 :]
    try:
        sig.replace(parameters=params).bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{task.module_path}: {exc}") from None


def _in_atomic_block() -> bool:
    return bool(transaction.get_connection().in_atomic_block)
