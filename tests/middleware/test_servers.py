"""The middleware on real servers: uvicorn (ASGI), gunicorn sync and waitress (WSGI).

Timing checks compare a page view that triggers a 2 s job with the same page when nothing is
due, with a generous margin: this machine is small and shared, and what is tested is "the
visitor does not wait for the job", a difference of about 2000 ms.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest.mock import ANY

import httpx
import pytest

import reqrunner
from reqrunner import JobState
from reqrunner.store.database import resolve_engine
from reqrunner.web.signing import Signer

from .servers import KINDS, baseline, serve, ttlb, wait_for
from .sites import read_stamps

MARGIN = 0.25
"""Seconds a triggering page may take over the nothing-due median (the job takes 2 s)."""
JOB = 2.0


def settings(tmp_path: Path, db: str, **more: str) -> dict[str, str]:
    return {"RR_DB": db, "RR_STAMPS": str(tmp_path / "stamps.jsonl"), **more}


def drop_tables(url: str) -> None:
    """Start from empty tables: the session's server database is shared with other tests."""
    engine = resolve_engine(url)
    with engine.begin() as conn:
        for table in ("reqrunner_jobs", "reqrunner_meta", "reqrunner_leases"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    engine.dispose()


def health(db: str, what: str) -> dict[str, object]:
    """One of the health records the middleware keeps for the admin (empty if none yet)."""
    queue = reqrunner.JobQueue(db)
    try:
        raw = queue.get_meta(f"reqrunner.health.{what}")
    finally:
        queue.close()
    return json.loads(raw) if raw else {}


def last_run(db: str) -> dict[str, object]:
    return health(db, "last_run")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", [*KINDS, "gthread"])
def test_the_visitor_does_not_wait_for_the_run(
    kind: str, mode: str, tmp_path: Path, figures: list[str]
) -> None:
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    env = settings(tmp_path, db, RR_MODE=mode)
    with serve(kind, tmp_path, **env) as server, httpx.Client() as visitor:
        url = server.url
        quiet = baseline(visitor, f"{url}/dispatch?n=0")
        # This page view dispatches a 2 s job and, being an HTML page with a job due, runs it.
        started = time.time()
        took, response = ttlb(visitor, f"{url}/dispatch?n=1&seconds={JOB}&key=slow")
        received = time.time()
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(response.content))
        # The same visitor's next requests (same connection where the server keeps it) and
        # another visitor's, while the job is still running: medians of three, which the
        # check below keeps honest (a worker held by the job would push them past its end).
        following = baseline(visitor, f"{url}/dispatch?n=0", n=3)
        with httpx.Client() as other:
            other_took = baseline(other, f"{url}/page", n=3)
        assert time.time() < started + JOB, "the checks above must happen during the job"
        wait_for(lambda: read_stamps(env["RR_STAMPS"]), 15, "the job to run")
        (stamp,) = read_stamps(env["RR_STAMPS"])
        figures.append(
            f"{kind:8} {mode:5} nothing due {quiet * 1000:6.1f}  triggering {took * 1000:6.1f}"
            f"  next request {following * 1000:6.1f}  other client {other_took * 1000:6.1f}"
            f"  job started {(stamp['start'] - received) * 1000:+6.1f} after the last byte"
        )
        assert took < quiet + MARGIN
        assert following < quiet + MARGIN
        assert other_took < quiet + MARGIN
        assert stamp["start"] >= started
        # The run's record is written after its last job: wait for it, then see who ran it.
        wait_for(lambda: last_run(db), 10, "the run's health record")
        assert last_run(db)["via"] == ("async" if mode == "async" else "sync")
        assert health(db, "self_request") == (
            {} if mode == "sync" else {"at": pytest.approx(started, abs=10), "url": ANY, "ok": True}
        )


@pytest.mark.parametrize(
    ("kind", "database", "mode"),
    [
        *((kind, "sqlite", mode) for kind in KINDS for mode in ("sync", "async")),
        # The lease on the server databases, across gunicorn's two worker processes.
        ("gunicorn", "postgresql", "sync"),
        ("gunicorn", "mysql", "sync"),
    ],
)
def test_one_run_at_a_time_under_twenty_page_views(
    kind: str, database: str, mode: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if database == "sqlite":
        db_url = f"sqlite:///{tmp_path}/jobs.sqlite3"
    else:
        db_url = request.getfixturevalue(f"{database}_url")
        drop_tables(db_url)
    env = settings(tmp_path, db_url, RR_MODE=mode, RR_CONC="1")
    # Two worker processes where the server has them, four threads in waitress: the lease
    # must hold across processes and threads alike.
    with serve(kind, tmp_path, workers=2, **env) as server:
        queue = reqrunner.JobQueue(db_url)
        try:
            for i in range(6):
                queue.dispatch("stamp", f"j{i}", 0.15)
        finally:
            queue.close()
        time.sleep(1.1)  # let every process's "nothing due" answer from start-up expire
        with ThreadPoolExecutor(20) as pool:
            statuses = list(
                pool.map(lambda _: httpx.get(f"{server.url}/page").status_code, range(20))
            )
        assert statuses == [200] * 20
        wait_for(lambda: len(read_stamps(env["RR_STAMPS"])) >= 6, 20, "all six jobs")
        stamps = sorted(read_stamps(env["RR_STAMPS"]), key=lambda s: s["start"])
    assert sorted(s["key"] for s in stamps) == [f"j{i}" for i in range(6)]
    for before, after in itertools.pairwise(stamps):
        assert after["start"] >= before["end"] - 0.001, "two runs overlapped"


class FakeSelf:
    """A stand-in for the site's run endpoint that fails in one way, counting connections."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        if behaviour == "refused":
            self._sock.close()  # nothing listens on this port
            return
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.recv(65536)
            if self.behaviour == "500":
                conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                conn.close()
            else:
                self._held.append(conn)  # "hangs": read the request, never answer

    def close(self) -> None:
        self._stop.set()
        if self.behaviour != "refused":
            self._thread.join(2)
            self._sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture(params=["refused", "500", "hangs"])
def fake_self(request: pytest.FixtureRequest) -> Iterator[FakeSelf]:
    fake = FakeSelf(request.param)
    try:
        yield fake
    finally:
        fake.close()


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_async_falls_back_to_sync(
    kind: str, fake_self: FakeSelf, tmp_path: Path, figures: list[str]
) -> None:
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    env = settings(tmp_path, db, RR_MODE="async", RR_SELF_URL=f"http://127.0.0.1:{fake_self.port}")
    with serve(kind, tmp_path, **env) as server, httpx.Client() as visitor:
        quiet = baseline(visitor, f"{server.url}/dispatch?n=0")
        took, _ = ttlb(visitor, f"{server.url}/dispatch?n=1&key=first")
        wait_for(lambda: read_stamps(env["RR_STAMPS"]), 15, "the job to run in-process")
        figures.append(
            f"{kind:8} async, self-request {fake_self.behaviour:7}: page {took * 1000:6.1f}"
            f" (nothing due {quiet * 1000:6.1f})"
        )
        assert took < quiet + MARGIN
        wait_for(lambda: last_run(db), 10, "the run's health record")
        assert last_run(db)["via"] == "sync"
        assert health(db, "self_request")["ok"] is False
        attempts = fake_self.connections
        # (A page view whose due check raced the dispatch may have tried too: at least one.)
        assert attempts >= (0 if fake_self.behaviour == "refused" else 1)
        # The breaker is open now: the next run goes straight in-process, no new attempt.
        ttlb(visitor, f"{server.url}/dispatch?n=1&key=second")
        wait_for(lambda: len(read_stamps(env["RR_STAMPS"])) == 2, 15, "the second job")
    assert fake_self.connections == attempts
    assert "self-request" in server.log.read_text()


def test_run_endpoint_on_a_real_server(tmp_path: Path) -> None:
    # The refusals are tested through both adapters in test_endpoint.py; the valid token on
    # every server by the async tests above. Here: one real server, end to end.
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    env = settings(tmp_path, db, RR_RATE="0", RR_SECRET="s3cret")
    with serve("gunicorn", tmp_path, **env) as server:
        queue = reqrunner.JobQueue(db)
        try:
            queue.dispatch("stamp", "endpoint")
        finally:
            queue.close()
        run = f"{server.url}/_reqrunner/run"
        good = Signer("s3cret").sign("run", ttl=60)
        assert httpx.post(run).status_code == 403
        assert httpx.post(run, data={"token": good[:-1] + "x"}).status_code == 403
        assert (
            httpx.post(run, data={"token": Signer("guess").sign("run", ttl=60)}).status_code == 403
        )
        assert httpx.get(run, params={"token": good}).status_code == 405
        assert httpx.get(f"{server.url}/page").status_code == 200  # run_rate 0: no run
        assert read_stamps(env["RR_STAMPS"]) == []
        response = httpx.post(run, data={"token": good})
        assert response.status_code == 202
        wait_for(lambda: read_stamps(env["RR_STAMPS"]), 15, "the endpoint's run")


def test_gunicorn_shutdown_finishes_the_current_job_and_starts_no_other(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/jobs.sqlite3"
    env = settings(tmp_path, db, RR_MODE="sync")
    with serve("gunicorn", tmp_path, **env) as server:
        # One page view dispatches two 1.5 s jobs and starts their run in a background thread.
        httpx.get(f"{server.url}/dispatch?n=2&seconds=1.5&key=sd")
        time.sleep(0.3)
        os.kill(server.process.pid, signal.SIGTERM)
        stopping = time.monotonic()
        server.process.wait(15)
        took = time.monotonic() - stopping
    # The job under way finished (a daemon thread alone would have died with the worker) ...
    assert [s["key"] for s in read_stamps(env["RR_STAMPS"])] == ["sd0"]
    # ... the next one was left for later, and the worker exited well inside gunicorn's
    # graceful timeout (5 s here) instead of running the whole batch.
    queue = reqrunner.JobQueue(db)
    try:
        assert [(j.state, j.attempts) for j in queue.list_jobs()] == [(JobState.WAITING, 0)]
    finally:
        queue.close()
    assert took < 4.0
