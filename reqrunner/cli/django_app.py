"""``--app mysite.settings``: a Django settings module, whose ``TASKS`` backend names the queue."""

from __future__ import annotations

import importlib
import os
import sys

from ..queue import JobQueue

__all__ = ["django_queue", "is_settings_module"]


def is_settings_module(spec: str) -> bool:
    """Whether ``spec`` (no ``:``) names an importable module with a ``TASKS`` setting."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(spec)
    except Exception:
        return False
    return hasattr(module, "TASKS")


def django_queue(settings_module: str) -> JobQueue:
    """Set Django up with ``settings_module`` and return the queue of its ``TASKS`` backend
    (the ``default`` alias if it is a ``ReqrunnerBackend``, else the first one that is).
    ``LookupError`` when no backend of ``TASKS`` is one."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django  # noqa: PLC0415 (only a Django project's CLI loads Django)

    django.setup()
    from ..django import ready_backends  # noqa: PLC0415

    backends = ready_backends()
    if not backends:
        raise LookupError(
            f"{settings_module}.TASKS has no reqrunner.django.ReqrunnerBackend; add one, "
            "or pass --app MODULE:ATTR naming your JobQueue"
        )
    return backends[0].queue
