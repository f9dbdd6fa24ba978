"""The job database cut off behind a relay: pages are served, dispatchers get StoreError, and
everything dispatched runs once the database is back."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy.engine import make_url

import reqrunner
from reqrunner.errors import StoreError

from ..conftest import drop_tables
from ..middleware.conftest import inner_wsgi, join_runs
from .relay import Relay


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_an_outage_serves_pages_refuses_dispatches_and_loses_nothing(
    kind: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    url = make_url(request.getfixturevalue(f"{kind}_url"))
    drop_tables(url.render_as_string(hide_password=False))
    relay = Relay((url.host or "127.0.0.1", url.port or (5432 if kind == "postgresql" else 3306)))
    relayed = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    queue = reqrunner.JobQueue(relayed)
    ran: list[int] = []

    @queue.job(name="numbered")
    def numbered(n: int) -> None:
        ran.append(n)

    app = reqrunner.WSGIMiddleware(inner_wsgi, queue, run_rate=1.0, mode="sync", secret="s")
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://site")
    statuses: dict[str, list[int]] = {"page": [], "run": []}
    try:
        for n in range(5):
            numbered.dispatch(n)
        relay.cut()
        refused = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            statuses["page"].append(client.get("/", headers={"accept": "text/html"}).status_code)
            statuses["run"].append(client.post("/_reqrunner/run", data={"token": "x"}).status_code)
            with pytest.raises(StoreError):
                numbered.dispatch(-1)
            refused += 1
            time.sleep(0.1)
        relay.restore()
        for n in range(5, 10):
            numbered.dispatch(n)
        client.get("/", headers={"accept": "text/html"})  # a page view runs them ...
        join_runs()
        queue.run()  # ... and what it left, if anything, runs here
        join_runs()
    finally:
        client.close()
        queue.close()
        relay.close()

    assert set(statuses["page"]) == {200}
    assert set(statuses["run"]) <= {403, 503}
    assert refused >= 10
    assert sorted(ran) == list(range(10))  # none lost, none twice
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("reqrunner")]
    print(
        f"\n{kind} outage: {refused} dispatches refused with StoreError, "
        f"{len(statuses['page'])} pages served ({sorted(set(statuses['page']))}), "
        f"run endpoint {sorted(set(statuses['run']))}, 10 of 10 jobs ran once"
    )
