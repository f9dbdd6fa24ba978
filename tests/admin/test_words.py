"""The admin says things right: the attempt history after a retry, the batch limits in full."""

from __future__ import annotations

import httpx

from reqrunner.web.admin import BasicAuth

from .conftest import ADMIN, Site, hook, hooks, post
from .site_app import PASSWORD, USER


def test_the_attempt_history_reads_in_order_after_a_retry(site: Site, client: httpx.Client) -> None:
    queue = site.queue
    job_id = queue.dispatch("shop.broken", "no")  # one attempt a round
    queue.run()
    post(client, f"/jobs/{job_id}/retry", next=f"/jobs/{job_id}")
    queue.run()
    (entry_a, entry_b) = queue.get(job_id).history  # type: ignore[union-attr]
    assert entry_a["attempt"] == entry_b["attempt"] == 1  # what the store counts
    html = client.get(ADMIN + f"/jobs/{job_id}").text
    attempts = [text for label, text in hooks(html, "data-label") if label == "Attempt"]
    assert attempts == ["1", "2 (attempt 1 after retry 1)"]


def test_the_batch_limits_include_the_memory_bound(site: Site) -> None:
    with site.client(BasicAuth(USER, PASSWORD), max_memory="128M", max_jobs=5) as client:
        assert hook(client.get(ADMIN).text, "data-limits") == "5 jobs, 30 s, 128M of memory"
    with site.client(BasicAuth(USER, PASSWORD)) as client:
        limits = hook(client.get(ADMIN).text, "data-limits")
        assert limits == "30 jobs, 30 s, 80 % of the process's memory limit"


def test_the_overview_offers_a_first_check(client: httpx.Client) -> None:
    html = client.get(ADMIN).text
    assert [state for state, _ in hooks(html, "data-doctor")] == ["none"]
    assert "No check has been made yet" in hook(html, "data-doctor-summary")
    assert f'action="{ADMIN}/doctor"' in html
