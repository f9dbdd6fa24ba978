"""The per-request decision, through both adapters, on a real SQLite queue: which page views
qualify, the run rate, the due cache, the run leases, and what reaches the visitor."""

from __future__ import annotations

import random
import threading
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

import reqrunner
from reqrunner.web.asgi import ASGIMiddleware
from reqrunner.web.policy import PageView, RunPolicy
from reqrunner.web.wsgi import WSGIMiddleware

from .conftest import HTML, STREAM, Driver


def waiting(queue: reqrunner.JobQueue) -> int:
    return queue.stats().waiting


@pytest.mark.parametrize(
    ("sent", "runs"),
    [
        pytest.param(("GET", "/html", {}), True, id="html-page"),
        pytest.param(("POST", "/html", {}), True, id="post-html"),
        pytest.param(("GET", "/xhtml", {}), True, id="xhtml-page"),
        pytest.param(("GET", "/missing", {}), True, id="404-html-page"),
        pytest.param(("HEAD", "/html", {}), False, id="head"),
        pytest.param(("OPTIONS", "/html", {}), False, id="options"),
        pytest.param(("GET", "/html", {"X-Requested-With": "XMLHttpRequest"}), False, id="xhr"),
        pytest.param(("GET", "/html", {"Sec-Fetch-Mode": "cors"}), False, id="fetch-cors"),
        pytest.param(("GET", "/html", {"Sec-Fetch-Mode": "no-cors"}), False, id="fetch-no-cors"),
        pytest.param(("GET", "/html", {"Sec-Fetch-Mode": "navigate"}), True, id="navigate"),
        pytest.param(("GET", "/json", {}), False, id="json"),
        pytest.param(("GET", "/error", {}), False, id="5xx"),
        pytest.param(("GET", "/_reqrunner/other", {}), False, id="own-path"),
    ],
)
def test_qualification(
    driver: Driver,
    jobs_queue: reqrunner.JobQueue,
    sent: tuple[str, str, dict[str, str]],
    runs: bool,
) -> None:
    driver.wrap(jobs_queue, mode="sync")
    jobs_queue.dispatch("noop")
    driver.request(*sent)
    assert waiting(jobs_queue) == (0 if runs else 1)


def test_page_is_served_unchanged(driver: Driver, jobs_queue: reqrunner.JobQueue) -> None:
    driver.wrap(jobs_queue, mode="sync")
    jobs_queue.dispatch("noop")
    result = driver.request("GET", "/html")
    assert (result.status, result.body) == (200, HTML)
    assert result.headers["content-length"] == str(len(HTML))
    assert waiting(jobs_queue) == 0


def test_custom_qualify_replaces_the_rule(driver: Driver, jobs_queue: reqrunner.JobQueue) -> None:
    seen: list[PageView] = []

    def only_json(view: PageView) -> bool:
        seen.append(view)
        return view.content_type == "application/json"

    driver.wrap(jobs_queue, mode="sync", qualify=only_json)
    jobs_queue.dispatch("noop")
    driver.request("GET", "/html")
    assert waiting(jobs_queue) == 1
    driver.request("GET", "/json", {"X-Requested-With": "XMLHttpRequest"})
    assert waiting(jobs_queue) == 0
    assert [v.path for v in seen] == ["/html", "/json"]
    assert seen[1].request_headers["x-requested-with"] == "XMLHttpRequest"
    assert seen[1].status == 200


def test_a_raising_qualify_serves_the_page(
    driver: Driver, jobs_queue: reqrunner.JobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(view: PageView) -> bool:
        raise RuntimeError("bug in the site's rule")

    driver.wrap(jobs_queue, mode="sync", qualify=broken)
    jobs_queue.dispatch("noop")
    result = driver.request("GET", "/html")
    assert (result.status, result.body) == (200, HTML)
    assert waiting(jobs_queue) == 1
    assert "qualify callable raised" in caplog.text


def test_a_failure_inspecting_the_response_serves_the_page(
    driver: Driver,
    jobs_queue: reqrunner.JobQueue,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    driver.wrap(jobs_queue, mode="sync")
    assert driver.middleware is not None

    def broken(*args: object) -> None:
        raise RuntimeError("bug in reqrunner's decision")

    monkeypatch.setattr(driver.middleware.core, "decide", broken)
    jobs_queue.dispatch("noop")
    result = driver.request("GET", "/html")
    assert (result.status, result.body) == (200, HTML)
    assert waiting(jobs_queue) == 1
    assert "failed while inspecting a response" in caplog.text


def test_rate_zero_never_runs(driver: Driver, jobs_queue: reqrunner.JobQueue) -> None:
    driver.wrap(jobs_queue, mode="sync", run_rate=0)
    jobs_queue.dispatch("noop")
    for _ in range(5):
        driver.request("GET", "/html")
    assert waiting(jobs_queue) == 1


def test_rate_half_follows_the_seeded_random_source(
    driver: Driver, jobs_queue: reqrunner.JobQueue
) -> None:
    driver.wrap(jobs_queue, mode="sync", run_rate=0.5)
    assert driver.middleware is not None
    driver.middleware.die = random.Random(42).random
    reference = random.Random(42)
    expected = [reference.random() < 0.5 for _ in range(24)]
    observed = []
    for _ in expected:
        jobs_queue.dispatch("noop")
        driver.request("GET", "/html")
        observed.append(waiting(jobs_queue) == 0)
        for job in jobs_queue.list_jobs(state="waiting"):
            jobs_queue.delete(job.id)
    assert observed == expected
    assert 0 < sum(observed) < len(observed)


def test_nothing_due_runs_nothing_and_asks_once_per_second(
    driver: Driver, jobs_queue: reqrunner.JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    real = jobs_queue.has_due

    def counting(*args: object, **kwargs: object) -> bool:
        answer = real()
        calls.append(answer)
        return answer

    monkeypatch.setattr(jobs_queue, "has_due", counting)
    driver.wrap(jobs_queue, mode="sync")
    for _ in range(20):
        driver.request("GET", "/html")
    assert calls == [False]  # twenty pages, one query: the rest came from the cache
    # A delayed job is dispatched here: the local dispatch drops the cache, the next page asks.
    jobs_queue.jobs["noop"].using(delay=3600).dispatch()
    driver.request("GET", "/html")
    assert calls == [False, False]
    jobs_queue.dispatch("noop")
    driver.request("GET", "/html")
    assert calls == [False, False, True]
    assert waiting(jobs_queue) == 0


def test_due_cache_expires_after_about_a_second() -> None:
    now = [100.0]
    answers = iter([False, True])

    class FakeQueue:
        def has_due(self) -> bool:
            return next(answers)

        def on_dispatch(self, callback: object) -> None:
            pass

    policy = RunPolicy(FakeQueue(), clock=lambda: now[0])
    assert policy.cached_due() is None
    assert not policy.nothing_due()  # not known is not "nothing due"
    assert policy.jobs_due() is False
    now[0] += 0.9
    assert policy.cached_due() is False
    assert policy.nothing_due()
    now[0] += 0.2
    assert policy.cached_due() is None
    assert not policy.nothing_due()
    assert policy.jobs_due() is True
    assert not policy.nothing_due()


def test_database_down_serves_the_page(
    driver: Driver, jobs_queue: reqrunner.JobQueue, caplog: pytest.LogCaptureFixture
) -> None:
    def down(*args: object, **kwargs: object) -> bool:
        raise reqrunner.StoreError("database is down")

    driver.wrap(jobs_queue, mode="sync")
    jobs_queue.has_due = down  # type: ignore[method-assign]
    result = driver.request("GET", "/html")
    assert (result.status, result.body) == (200, HTML)
    assert "could not check for due jobs" in caplog.text


def test_max_concurrent_runs_lease_held_elsewhere_runs_nothing(
    driver: Driver, jobs_queue: reqrunner.JobQueue
) -> None:
    driver.wrap(jobs_queue, mode="sync", max_time=5)
    token = jobs_queue.acquire_lease("reqrunner.run.0", 60)
    assert token is not None
    jobs_queue.dispatch("noop")
    driver.request("GET", "/html")
    assert waiting(jobs_queue) == 1  # another process holds the only run lease
    jobs_queue.release_lease("reqrunner.run.0", token)
    driver.request("GET", "/html")
    assert waiting(jobs_queue) == 0
    # and the run released its lease in the end
    assert jobs_queue.acquire_lease("reqrunner.run.0", 60) is not None


def test_second_lease_slot_with_two_concurrent_runs(
    driver: Driver, jobs_queue: reqrunner.JobQueue
) -> None:
    driver.wrap(jobs_queue, mode="sync", max_concurrent_runs=2)
    token = jobs_queue.acquire_lease("reqrunner.run.0", 60)
    assert token is not None
    jobs_queue.dispatch("noop")
    driver.request("GET", "/html")
    assert waiting(jobs_queue) == 0


def test_a_dispatch_during_the_due_query_is_not_hidden_by_its_answer() -> None:
    policy: RunPolicy

    class RacingQueue:
        """Answers "nothing due", but a dispatch lands while it is answering."""

        def __init__(self) -> None:
            self.calls = 0

        def has_due(self) -> bool:
            self.calls += 1
            if self.calls == 1:
                policy.invalidate()  # what queue.on_dispatch does from another thread
            return False

        def on_dispatch(self, callback: object) -> None:
            pass

    queue = RacingQueue()
    policy = RunPolicy(queue)
    assert policy.jobs_due() is True
    assert policy.cached_due() is None  # the racing answer was not cached
    assert policy.jobs_due() is False
    assert queue.calls == 2


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
def test_other_scopes_pass_through_untouched(jobs_queue: reqrunner.JobQueue, kind: str) -> None:
    seen: list[tuple[object, object, object]] = []

    async def app(scope: object, receive: object, send: object) -> None:
        seen.append((scope, receive, send))

    async def receive() -> dict[str, str]:
        return {"type": f"{kind}.disconnect"}

    async def send(message: object) -> None:
        pass

    middleware = ASGIMiddleware(app, jobs_queue)
    scope = {"type": kind, "path": "/_reqrunner/run", "headers": []}
    anyio.run(middleware, scope, receive, send)
    assert seen == [(scope, receive, send)]


@pytest.mark.parametrize("mode", ["sync", "async", "js"])
def test_no_database_call_on_the_event_loop(
    jobs_queue: reqrunner.JobQueue, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    threads: list[str] = []
    real_has_due = jobs_queue.has_due
    real_secret = type(jobs_queue).secret

    def has_due(*args: object) -> bool:
        threads.append(threading.current_thread().name)
        return real_has_due()

    def secret(queue: reqrunner.JobQueue) -> str:
        threads.append(threading.current_thread().name)
        return str(real_secret.__get__(queue))

    monkeypatch.setattr(jobs_queue, "has_due", has_due)
    monkeypatch.setattr(type(jobs_queue), "secret", property(secret))
    monkeypatch.delenv("REQRUNNER_SECRET", raising=False)
    # self_url: a closed port, so that async mode falls back at once.
    driver = Driver("asgi").wrap(jobs_queue, mode=mode, self_url="http://127.0.0.1:9")
    jobs_queue.dispatch("noop")
    for _ in range(3):
        driver.request("GET", "/html")
    driver.request("POST", "/_reqrunner/run", *form_fields("token=1.x"))
    assert len(threads) >= 2, "the due check and the secret were never asked for"
    # anyio.run drives the loop in this (the main) thread; the queries ran in worker threads.
    assert "MainThread" not in threads


def form_fields(body: str) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/x-www-form-urlencoded"}, body.encode()


def test_a_triggering_streamed_wsgi_page_gets_a_content_length(
    jobs_queue: reqrunner.JobQueue,
) -> None:
    driver = Driver("wsgi").wrap(jobs_queue, mode="sync")
    jobs_queue.dispatch("noop")
    result = driver.request("GET", "/stream")
    assert result.body == b"".join(STREAM)
    assert result.headers["content-length"] == str(len(result.body))
    assert waiting(jobs_queue) == 0
    # With nothing due the same page is passed on as the app made it.
    assert "content-length" not in driver.request("GET", "/stream").headers


def test_starlette_add_middleware(jobs_queue: reqrunner.JobQueue) -> None:
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse("<html><body>hi</body></html>")

    app = Starlette(routes=[Route("/", page)])
    app.add_middleware(ASGIMiddleware, queue=jobs_queue, run_rate=1.0, mode="sync")
    driver = Driver("asgi").serve(app)
    jobs_queue.dispatch("noop")
    assert driver.request("GET", "/").body == b"<html><body>hi</body></html>"
    assert driver.request("POST", "/_reqrunner/run").status == 403
    assert waiting(jobs_queue) == 0


def test_wsgi_app_using_the_write_callable(jobs_queue: reqrunner.JobQueue) -> None:
    def legacy(environ: dict[str, object], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/html")])
        write(b"<html><body>")
        write(b"written</body></html>")
        return []

    driver = Driver("wsgi").serve(WSGIMiddleware(legacy, jobs_queue, mode="sync"))
    jobs_queue.dispatch("noop")
    result = driver.request("GET", "/")
    assert result.body == b"<html><body>written</body></html>"
    assert result.headers["content-length"] == str(len(result.body))
    assert waiting(jobs_queue) == 0


@pytest.mark.parametrize(
    ("protocol", "run_once", "expected"),
    [("asgi", False, "sync"), ("wsgi", False, "sync"), ("wsgi", True, "js")],
)
def test_auto_mode_per_server(
    jobs_queue: reqrunner.JobQueue, protocol: str, run_once: bool, expected: str
) -> None:
    driver = Driver(protocol).wrap(jobs_queue)  # mode="auto"
    driver.run_once = run_once
    jobs_queue.dispatch("noop")
    result = driver.request("GET", "/html")
    if expected == "sync":  # run in this process, after the response, page untouched
        assert result.body == HTML
        assert waiting(jobs_queue) == 0
    else:  # under CGI: nothing runs in the visitor's process, the page carries the script
        assert b"/_reqrunner/trigger.js" in result.body
        assert waiting(jobs_queue) == 1
