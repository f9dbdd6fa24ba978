"""Switching the run mode while the site runs, for the demo's settings page.

A middleware's mode is fixed when it is built (options are validated once, and no request
changes them), so the demo builds one per mode around the same app and the same queue, and each
request goes through the one the settings page chose. A real site picks one mode and wraps once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from reqrunner import ASGIMiddleware, JobQueue, WSGIMiddleware
from reqrunner.web.asgi import ASGIApp, Receive, Scope, Send
from reqrunner.web.policy import Mode
from reqrunner.web.wsgi import StartResponse, WSGIApp

from .views import MODES

__all__ = ["ASGIModeSwitch", "WSGIModeSwitch"]


class ASGIModeSwitch:
    def __init__(
        self, app: ASGIApp, queue: JobQueue, *, mode: Callable[[], Mode], **options: Any
    ) -> None:
        self._mode = mode
        self._apps = {m: ASGIMiddleware(app, queue, mode=m, **options) for m in MODES}

    def current(self) -> ASGIMiddleware:
        """The middleware the settings page chose (what doctor checks)."""
        return self._apps[self._mode()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._apps["auto"](scope, receive, send)
            return
        # A point read in a local SQLite file (tens of microseconds): cheap enough for the loop.
        await self._apps[self._mode()](scope, receive, send)


class WSGIModeSwitch:
    def __init__(
        self, app: WSGIApp, queue: JobQueue, *, mode: Callable[[], Mode], **options: Any
    ) -> None:
        self._mode = mode
        self._apps = {m: WSGIMiddleware(app, queue, mode=m, **options) for m in MODES}

    def current(self) -> WSGIMiddleware:
        """The middleware the settings page chose (what doctor checks)."""
        return self._apps[self._mode()]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self._apps[self._mode()](environ, start_response)
