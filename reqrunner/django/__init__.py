"""Django's task API (``django.tasks`` in Django 6, the ``django_tasks`` backport before)
run by reqrunner: ``TASKS = {"default": {"BACKEND": "reqrunner.django.ReqrunnerBackend"}}``.

Importing this module imports Django; ``import reqrunner`` does not.
"""

from __future__ import annotations

from django.conf import settings

from ..queue import JobQueue
from .backend import ReqrunnerBackend
from .compat import task_backends

__all__ = ["ReqrunnerBackend", "get_queue", "ready_backends"]


def get_queue(alias: str = "default") -> JobQueue:
    """The ``JobQueue`` that the ``TASKS`` backend ``alias`` stores its tasks in: what
    ``wsgi.py`` / ``asgi.py`` wrap the application with, and ``reqrunner work`` drains."""
    backend = task_backends[alias]
    if not isinstance(backend, ReqrunnerBackend):
        raise TypeError(
            f"TASKS[{alias!r}] is a {type(backend).__name__}, not reqrunner.django.ReqrunnerBackend"
        )
    return backend.queue


def ready_backends() -> list[ReqrunnerBackend]:
    """Set up every ``ReqrunnerBackend`` in ``settings.TASKS`` (so their queues know how to
    run the tasks) and return them, the ``default`` alias first."""
    configured = getattr(settings, "TASKS", {}) or {}
    aliases = sorted(configured, key=lambda alias: alias != "default")
    found = [task_backends[alias] for alias in aliases]
    return [backend for backend in found if isinstance(backend, ReqrunnerBackend)]
