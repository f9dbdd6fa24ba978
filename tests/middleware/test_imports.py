"""The admin pages load only for a site that turned them on (in a fresh interpreter, since this
test process has loaded them long ago)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys

import anyio

import reqrunner
from reqrunner.web.asgi import ASGIMiddleware
from reqrunner.web.wsgi import WSGIMiddleware


def admin_modules():
    return sorted(m for m in sys.modules if m.startswith("reqrunner.web.admin"))


async def page(scope, receive, send):
    headers = [(b"content-type", b"text/html")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"<html><body>hi</body></html>"})


async def get(app, path):
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "scheme": "http",
             "query_string": b"", "headers": [(b"host", b"testserver")]}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"]


queue = reqrunner.JobQueue(sys.argv[1])
bare = ASGIMiddleware(page, queue, mode="sync")
WSGIMiddleware(lambda environ, start_response: [], queue)
assert anyio.run(get, bare, "/") == 200
assert anyio.run(get, bare, "/_reqrunner/admin") == 404
assert admin_modules() == [], admin_modules()

with_admin = ASGIMiddleware(page, queue, admin=reqrunner.BasicAuth("admin", "pw"))
assert "reqrunner.web.admin.site" in admin_modules(), admin_modules()
assert anyio.run(get, with_admin, "/_reqrunner/admin") == 401
print("ok")
"""


def test_a_site_without_the_admin_never_loads_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.sqlite3"
    command = [sys.executable, "-c", SCRIPT, url]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
