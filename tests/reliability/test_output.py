"""Job output with surrogates, NUL, a megabyte and markup: stored on every database, shown
escaped by the admin, and the run goes on."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

import reqrunner
from reqrunner.web.admin import BasicAuth

from ..middleware.conftest import inner_wsgi

MARKUP = "<script>alert('x')</script>"


def test_hostile_output_on_every_database(db_url: str, tmp_path: Path) -> None:
    queue = reqrunner.JobQueue(db_url)
    after: list[str] = []

    @queue.job(name="spills", attempts=1)
    def spills(blob: str, ctx: reqrunner.JobContext) -> None:
        name = os.fsdecode(b"caf\xe9\x00.jpg")
        ctx.describe(f"{MARKUP} {name}")
        raise RuntimeError(f"{MARKUP} {name} {blob}")

    @queue.job(name="after")
    def then() -> None:
        after.append("ran")

    job_id = spills.dispatch("é" * (1 << 20))
    queue.dispatch("after")
    report = queue.run()
    assert (report.failed, report.succeeded) == (1, 1) and after == ["ran"]

    app = reqrunner.WSGIMiddleware(
        inner_wsgi, queue, run_rate=0, secret="s", admin=BasicAuth("u", "p")
    )
    with httpx.Client(
        transport=httpx.WSGITransport(app=app), base_url="http://site", auth=("u", "p")
    ) as client:
        page = client.get(f"/_reqrunner/admin/jobs/{job_id}")
        listing = client.get("/_reqrunner/admin/jobs?state=failed")
    assert page.status_code == 200 and listing.status_code == 200
    for response in (page, listing):
        assert MARKUP not in response.text
    assert "&lt;script&gt;" in page.text
    assert "caf\\udce9\\x00.jpg" in page.text
    queue.close()
