"""Running Django tasks in reqrunner's runner, as Django's own backends do: the context,
the signals, a JSON return value."""

from __future__ import annotations

import inspect
import traceback
from datetime import UTC, datetime
from typing import Any

from django.db import close_old_connections

from ..context import JobContext
from . import results
from .compat import (
    TaskContext,
    TaskError,
    TaskResultStatus,
    normalize_json,
    task_finished,
    task_started,
)

__all__ = ["CONTEXT_PARAM", "TaskJob", "Unimportable"]

#: The keyword the runner passes reqrunner's JobContext as (never a task's own parameter:
#: Django's tasks take their context as the first positional argument).
CONTEXT_PARAM = "_reqrunner_context"


class Unimportable:
    """A task whose module fails to import here: running it raises that failure, named."""

    is_async = False
    context_param = None
    result_ttl = 0.0
    signature = inspect.Signature(
        [
            inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
            inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
        ]
    )

    def __init__(self, name: str, cause: BaseException) -> None:
        self._message = (
            f"Django task {name!r}: importing it failed: {type(cause).__name__}: {cause}"
        )

    def fn(self, *args: Any, **kwargs: Any) -> None:
        raise ImportError(self._message)


class TaskJob:
    """A Django ``Task`` as the runner sees a job function."""

    context_param = CONTEXT_PARAM

    def __init__(self, task: Any, backend: Any) -> None:
        self.task = task
        self.backend = backend
        self.result_ttl: float = backend.reqrunner_options.result_ttl
        self.is_async = inspect.iscoroutinefunction(task.func)
        sig = inspect.signature(task.func)
        params = list(sig.parameters.values())[1 if task.takes_context else 0 :]
        self.signature = sig.replace(parameters=params, return_annotation=sig.empty)
        self.fn = self._run_async if self.is_async else self._run

    def _started(self, ctx: JobContext, args: Any, kwargs: Any) -> Any:
        ctx.describe(results.WORKER_PREFIX + results.worker_id())
        info = self.backend.queue.get(ctx.job_id)
        now = datetime.now(UTC)
        alias, result_id = self.backend.alias, str(ctx.job_id)
        if info is None:
            # The runner's queue is another database than the backend's (``reqrunner --db``).
            result = results.new_result(self.task, result_id, args, kwargs, alias=alias, now=now)
            object.__setattr__(result, "status", TaskResultStatus.RUNNING)
        else:
            result = results.from_info(self.task, result_id, info, alias, status="RUNNING")
        object.__setattr__(result, "started_at", now)
        object.__setattr__(result, "last_attempted_at", now)
        object.__setattr__(result, "worker_ids", [results.worker_id()] * ctx.attempt)
        return result

    def _call_args(self, result: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (TaskContext(task_result=result), *args) if self.task.takes_context else args

    def _ended(self, result: Any, ctx: JobContext, value: Any, error: BaseException | None) -> bool:
        """Mark ``result`` finished; whether this attempt ends the task (send task_finished)."""
        object.__setattr__(result, "finished_at", datetime.now(UTC))
        if error is None:
            object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
            results.set_return_value(result, value)
            return True
        kind = type(error)
        result.errors.append(
            TaskError(
                exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
                traceback="".join(traceback.format_exception(error)),
            )
        )
        object.__setattr__(result, "status", TaskResultStatus.FAILED)
        return ctx.attempt >= ctx.max_attempts

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        ctx: JobContext = kwargs.pop(CONTEXT_PARAM)
        # The runner may be a thread after the response: use and leave Django's database
        # connections as a request would.
        close_old_connections()
        try:
            result = self._started(ctx, args, kwargs)
            sender = type(self.backend)
            task_started.send(sender=sender, task_result=result)
            try:
                value = normalize_json(self.task.func(*self._call_args(result, args), **kwargs))
            except Exception as exc:
                if self._ended(result, ctx, None, exc):
                    task_finished.send(sender=sender, task_result=result)
                raise
            self._ended(result, ctx, value, None)
            task_finished.send(sender=sender, task_result=result)
            return value
        finally:
            close_old_connections()

    async def _run_async(self, *args: Any, **kwargs: Any) -> Any:
        ctx: JobContext = kwargs.pop(CONTEXT_PARAM)
        result = self._started(ctx, args, kwargs)
        sender = type(self.backend)
        await task_started.asend(sender=sender, task_result=result)
        try:
            raw = await self.task.func(*self._call_args(result, args), **kwargs)
            value = normalize_json(raw)
        except Exception as exc:
            if self._ended(result, ctx, None, exc):
                await task_finished.asend(sender=sender, task_result=result)
            raise
        self._ended(result, ctx, value, None)
        await task_finished.asend(sender=sender, task_result=result)
        return value
