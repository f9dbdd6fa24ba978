"""A tiny site wrapped by the middleware with the admin on, for in-process and server tests.

``uvicorn --factory tests.admin.site_app:asgi_app`` serves it; ``RR_DB`` names the job database
and ``RR_MARKER`` the file whose presence makes the ``flaky`` job succeed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import reqrunner
from reqrunner.web.admin import AdminAccess, BasicAuth
from reqrunner.web.asgi import ASGIApp, ASGIMiddleware
from reqrunner.web.wsgi import WSGIMiddleware

USER, PASSWORD = "admin", "s3cret pass"
PAGE = b"<!doctype html><html><body><h1>The site</h1></body></html>"


def register(queue: reqrunner.JobQueue, marker: str) -> None:
    """The admin tests' jobs."""

    @queue.job(name="shop.flaky", attempts=1)
    def flaky(order: int, note: str, ctx: reqrunner.JobContext) -> None:
        ctx.describe(f"Confirm order {order}")
        if not Path(marker).exists():
            raise RuntimeError(f"mail server said <script>alert('{note}')</script>")
        ctx.progress(1.0, "sent")

    @queue.job(name="shop.noop")
    def noop() -> None:
        """Does nothing."""

    @queue.job(name="shop.broken", attempts=1)
    def broken(text: str) -> None:
        raise ValueError(text)


def make_queue(url: str, marker: str) -> reqrunner.JobQueue:
    queue = reqrunner.JobQueue(url, keep_done=True)
    register(queue, marker)
    return queue


async def _page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PAGE})


def _wsgi_page(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [PAGE]


def wrap(
    protocol: str, queue: reqrunner.JobQueue, admin: AdminAccess | None, **options: Any
) -> ASGIMiddleware | WSGIMiddleware:
    """The site behind the middleware of ``protocol`` (``"asgi"`` or ``"wsgi"``)."""
    if protocol == "asgi":
        return ASGIMiddleware(_page, queue, admin=admin, mode="sync", **options)
    return WSGIMiddleware(_wsgi_page, queue, admin=admin, mode="sync", **options)


def asgi_app() -> ASGIApp:
    """The uvicorn factory for the browser test."""
    queue = make_queue(os.environ["RR_DB"], os.environ["RR_MARKER"])
    return wrap("asgi", queue, BasicAuth(USER, PASSWORD))
