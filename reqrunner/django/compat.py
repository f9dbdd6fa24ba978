"""Django's task API from wherever this Django has it: ``django.tasks`` (Django 6) or the
``django_tasks`` backport (Django 4.2 / 5.2). Everything else in this package takes it from
here, so one module serves both. Django is untyped here: the names are ``Any``."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = [
    "SOURCE",
    "BaseTaskBackend",
    "InvalidTask",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
    "set_return_value",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]


def _package() -> str:
    try:
        importlib.import_module("django.tasks")
    except ImportError:
        return "django_tasks"
    return "django.tasks"


SOURCE = _package()
"""``django.tasks`` or ``django_tasks``: where this process's task API comes from."""


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{SOURCE}{name}")


_base = _module(".base")
_exceptions = _module(".exceptions")
_signals = _module(".signals")

Task: Any = _base.Task
TaskContext: Any = _base.TaskContext
TaskError: Any = _base.TaskError
TaskResult: Any = _base.TaskResult
TaskResultStatus: Any = _base.TaskResultStatus
BaseTaskBackend: Any = _module(".backends.base").BaseTaskBackend
task_backends: Any = _module("").task_backends
InvalidTask: Any = getattr(_exceptions, "InvalidTask", None) or _exceptions.InvalidTaskError
TaskResultDoesNotExist: Any = _exceptions.TaskResultDoesNotExist
task_enqueued: Any = _signals.task_enqueued
task_started: Any = _signals.task_started
task_finished: Any = _signals.task_finished
normalize_json: Any = (
    importlib.import_module("django.utils.json").normalize_json
    if SOURCE == "django.tasks"
    else _module(".utils").normalize_json
)


def set_return_value(result: Any, value: Any) -> None:
    """Give a frozen ``TaskResult`` its return value, as Django's own backends do."""
    object.__setattr__(result, "_return_value", value)
