"""A site with periodic jobs, for the console script's and the admin's tests: its database is
``REQRUNNER_DATABASE_URL``; its jobs append their slot to ``PERIODIC_LOG``."""

from __future__ import annotations

import os
from typing import Any

import reqrunner
from reqrunner import JobContext

queue = reqrunner.JobQueue(keep_done=True)
ADMIN_LOGIN = ("admin", "periodic pass")


def _note(ctx: JobContext, name: str) -> None:
    info = queue.get(ctx.job_id)
    log = os.environ.get("PERIODIC_LOG")
    if log and info is not None:
        with open(log, "a") as out:
            out.write(f"{name}|{info.description}\n")


@queue.periodic("30 3 * * *", tz="Europe/Berlin", name="nightly-digest")
def nightly_digest(ctx: JobContext) -> None:
    _note(ctx, "nightly-digest")


@queue.periodic(every=1, name="every-second")
def every_second(ctx: JobContext) -> None:
    _note(ctx, "every-second")


def asgi_app() -> Any:
    """The uvicorn factory for the browser test: a page, and the admin behind Basic auth."""
    from reqrunner.web.admin import BasicAuth  # noqa: PLC0415
    from reqrunner.web.asgi import ASGIMiddleware  # noqa: PLC0415

    async def page(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"<html><body>site</body></html>"})

    return ASGIMiddleware(page, queue, admin=BasicAuth(*ADMIN_LOGIN), mode="sync")
