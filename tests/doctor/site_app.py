"""A small WSGI site for doctor's tests, configured from the environment so that a server (or a
CGI script) builds the same one doctor loads with ``--app``:

    RR_DB        job database URL                 RR_MODE      the middleware's mode (auto)
    RR_SELF_URL  self_url (default none)          RR_CSP       a Content-Security-Policy header
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import reqrunner

PASSWORD = "a long password"

queue = reqrunner.JobQueue(os.environ["RR_DB"])


@queue.job(name="doctor.noop")
def noop() -> None:
    """Does nothing: doctor's checks start runs, and these tests only count what is due."""


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    headers = [("content-type", "text/html; charset=utf-8")]
    if os.environ.get("RR_CSP"):
        headers.append(("content-security-policy", os.environ["RR_CSP"]))
    start_response("200 OK", headers)
    return [b"<!doctype html><html><body><p>A page.</p></body></html>"]


application = reqrunner.WSGIMiddleware(
    app,
    queue,
    mode=os.environ.get("RR_MODE", "auto"),  # type: ignore[arg-type]
    self_url=os.environ.get("RR_SELF_URL") or None,
    admin=reqrunner.BasicAuth("admin", PASSWORD),
)
