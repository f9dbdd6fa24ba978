"""``reqrunner.django.middleware.ReqrunnerMiddleware``: the page views' runs as a Django
``MIDDLEWARE`` entry instead of a wrap in ``wsgi.py`` / ``asgi.py``.

A Django middleware returns before the response is sent, so the run is attached to the
response's ``close()``, which Django calls once the server has sent it (a WSGI server after
the last byte; Django's ASGI handler after the final body message) and which hands it to a
background thread as the WSGI adapter does. The response is given a ``Content-Length`` so
that no server holds the visitor's page open until ``close()`` returns. Only the ``sync``
mode: the self-request and the script need reqrunner's own routes, which the wrap serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..web.background import run_in_background
from ..web.base import Middleware
from ..web.core import Origin
from ..web.policy import PageView, ServerKind
from . import get_queue

__all__ = ["ReqrunnerMiddleware"]

logger = logging.getLogger("reqrunner.middleware")

_ALLOWED = {"run_rate", "mode", "max_jobs", "max_time", "max_memory", "max_concurrent_runs",
            "qualify"}  # fmt: skip
# Django runs a sync middleware in a thread of its own, under WSGI and ASGI alike: the
# decision may wait for the database.
_SERVER = ServerKind(protocol="wsgi")


class ReqrunnerMiddleware:
    """Runs the ``default`` ``TASKS`` backend's due tasks after HTML page views, with the
    options of ``settings.REQRUNNER_OPTIONS`` (``run_rate``, ``max_jobs``, ``max_time``,
    ``max_memory``, ``max_concurrent_runs``, ``qualify``; ``mode`` only ``"sync"``/``"auto"``)
    and the queue of ``settings.REQRUNNER_TASKS_BACKEND`` (default ``"default"``)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        options = dict(getattr(settings, "REQRUNNER_OPTIONS", {}))
        unknown = sorted(set(options) - _ALLOWED)
        if unknown:
            raise ImproperlyConfigured(
                f"REQRUNNER_OPTIONS {unknown} need reqrunner's own routes, which only the wrap "
                "in wsgi.py / asgi.py serves; the MIDDLEWARE entry takes "
                f"{sorted(_ALLOWED)}"
            )
        if options.get("mode", "auto") not in ("auto", "sync"):
            raise ImproperlyConfigured(
                f"REQRUNNER_OPTIONS['mode'] = {options['mode']!r}: the MIDDLEWARE entry runs "
                "in this process ('sync'); wrap the application in wsgi.py / asgi.py for "
                "'async' or 'js'"
            )
        options["mode"] = "sync"
        queue = get_queue(getattr(settings, "REQRUNNER_TASKS_BACKEND", "default"))
        self._middleware = Middleware(None, queue, **options)
        self.core = self._middleware.core

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        try:
            self._arrange(request, response)
        except Exception:
            logger.exception("reqrunner failed while inspecting a response; passing it on")
        return response

    def _arrange(self, request: Any, response: Any) -> None:
        core = self.core
        if response.streaming or not self._middleware.rolled():
            return
        view = PageView(
            method=request.method,
            path=request.path,
            request_headers={k.lower(): v for k, v in request.headers.items()},
            status=response.status_code,
            response_headers={k.lower(): v for k, v in response.items()},
        )
        origin = Origin(
            scheme=request.scheme,
            host=request.get_host(),
            root_path=request.META.get("SCRIPT_NAME", ""),
        )
        plan = core.decide(view, _SERVER, origin)
        if plan.action != "run_after":
            return
        if not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))

        def after() -> None:
            run_in_background(lambda: core.after_response(plan.mode, origin))

        # Called by response.close(), once the server has sent the response.
        response._resource_closers.append(after)
