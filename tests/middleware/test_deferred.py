"""``after_response=True`` through both adapters, in-process: the job runs once the response
is complete, whatever ``run_rate`` says, before the run a triggering page starts."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import pytest

import reqrunner
from reqrunner import deferred
from reqrunner.web.asgi import ASGIMiddleware
from reqrunner.web.wsgi import WSGIMiddleware

from .conftest import Driver

BODY = b"<html><body>ok</body></html>"


class Site:
    """A queue whose jobs say, when they run, whether the response had been sent."""

    def __init__(self, queue: reqrunner.JobQueue) -> None:
        self.queue = queue
        self.ran: list[tuple[str, bool]] = []
        self.sent = False

        @queue.job(name="record")
        def record(key: str) -> None:
            self.ran.append((key, self.sent))

        self.record = record

    def handle(self, path: str) -> None:
        self.sent = False
        if path.startswith("/defer"):
            for key in ("a", "b", "c"):
                self.record.using(after_response=True).dispatch(key)
        if path == "/defer-and-fail":
            raise RuntimeError("the view fails after dispatching")

    def app(self, protocol: str) -> Any:
        site = self

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            site.handle(scope["path"])
            headers = [(b"content-type", b"text/html"), (b"content-length", b"%d" % len(BODY))]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": BODY})
            site.sent = True

        def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            site.handle(environ["PATH_INFO"])
            start_response("200 OK", [("Content-Type", "text/html")])
            return _Sent(site)

        return asgi if protocol == "asgi" else wsgi


class _Sent:
    # A WSGI body that notes when the server has taken all of it.
    def __init__(self, site: Site) -> None:
        self.site = site

    def __iter__(self) -> Any:
        yield BODY
        self.site.sent = True


@pytest.mark.parametrize("run_rate", [0.0, 1.0])
def test_deferred_jobs_run_after_the_response_in_dispatch_order(
    driver: Driver, jobs_queue: reqrunner.JobQueue, run_rate: float
) -> None:
    site = Site(jobs_queue)
    middleware = ASGIMiddleware if driver.protocol == "asgi" else WSGIMiddleware
    driver.serve(middleware(site.app(driver.protocol), jobs_queue, run_rate=run_rate))
    result = driver.request("GET", "/defer")
    assert result.status == 200
    assert site.ran == [("a", True), ("b", True), ("c", True)]
    assert jobs_queue.count_jobs() == 0


def test_the_deferred_jobs_come_before_the_pages_run(
    driver: Driver, jobs_queue: reqrunner.JobQueue
) -> None:
    site = Site(jobs_queue)
    earlier = site.record.dispatch("earlier")  # due before the page: the page's run takes it
    middleware = ASGIMiddleware if driver.protocol == "asgi" else WSGIMiddleware
    driver.serve(middleware(site.app(driver.protocol), jobs_queue, run_rate=1.0))
    driver.request("GET", "/defer")
    assert [key for key, _ in site.ran] == ["a", "b", "c", "earlier"]
    assert jobs_queue.get(earlier) is None


def test_outside_a_request_it_is_an_ordinary_dispatch(
    jobs_queue: reqrunner.JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = Site(jobs_queue)
    monkeypatch.setattr(deferred, "MAX_PENDING", 2)
    monkeypatch.setattr(deferred, "BY_THREAD", True)  # a process that serves WSGI
    site.handle("/defer")
    assert site.ran == []
    assert jobs_queue.count_jobs() == 3
    # The thread keeps what it dispatched for a response it might serve, within the bound.
    assert len(deferred.PENDING[threading.get_ident()]) == 2
    assert jobs_queue.run().succeeded == 3


def test_only_a_process_with_a_wsgi_middleware_keeps_jobs_by_thread(
    jobs_queue: reqrunner.JobQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = Site(jobs_queue)
    monkeypatch.setattr(deferred, "BY_THREAD", False)
    ASGIMiddleware(site.app("asgi"), jobs_queue)
    site.handle("/defer")  # say, a background task of an ASGI site
    assert deferred.PENDING == {}
    WSGIMiddleware(site.app("wsgi"), jobs_queue)
    assert deferred.BY_THREAD
    site.handle("/defer")
    assert len(deferred.PENDING[threading.get_ident()]) == 3
    assert jobs_queue.count_jobs() == 6


def test_a_wsgi_thread_runs_only_its_own_jobs(jobs_queue: reqrunner.JobQueue) -> None:
    # Two requests at once on two threads: the one that answers first must not take the
    # other's jobs, which that view may not be done with.
    site = Site(jobs_queue)
    dispatched, finish = threading.Event(), threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            site.record.using(after_response=True).dispatch("slow")
            dispatched.set()
            finish.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = WSGIMiddleware(app, jobs_queue, run_rate=0.0)
    slow = threading.Thread(target=Driver("wsgi").serve(wrapped).request, args=("GET", "/slow"))
    slow.start()
    assert dispatched.wait(10)
    Driver("wsgi").serve(wrapped).request("GET", "/fast")  # returns once its runs are done
    assert site.ran == []
    finish.set()
    slow.join(10)
    assert [key for key, _ in site.ran] == ["slow"]


def test_jobs_dispatched_while_the_body_is_made_follow_the_threads_next_response(
    jobs_queue: reqrunner.JobQueue,
) -> None:
    site = Site(jobs_queue)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/stream":
            yield b"first "
            site.record.using(after_response=True).dispatch("streamed")
        yield b"ok"

    driver = Driver("wsgi").serve(WSGIMiddleware(app, jobs_queue, run_rate=0.0))
    driver.request("GET", "/stream")
    assert jobs_queue.count_jobs() == 1
    driver.request("GET", "/next")
    assert [key for key, _ in site.ran] == ["streamed"]


def test_what_a_job_run_after_a_response_dispatches_is_ordinary(
    driver: Driver, jobs_queue: reqrunner.JobQueue
) -> None:
    ran: list[str] = []

    @jobs_queue.job(name="chain")
    def chain(step: int) -> None:
        ran.append(f"chain {step}")
        if step == 0:
            chain.using(after_response=True).dispatch(1)

    def handle(path: str) -> None:
        if path == "/chain":
            chain.using(after_response=True).dispatch(0)

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        handle(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        handle(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = ASGIMiddleware if driver.protocol == "asgi" else WSGIMiddleware
    driver.serve(middleware(asgi if driver.protocol == "asgi" else wsgi, jobs_queue, run_rate=0.0))
    driver.request("GET", "/chain")
    assert ran == ["chain 0"]
    assert jobs_queue.count_jobs() == 1  # step 1 waits for a run, like any dispatch
    assert deferred.PENDING == {}


def test_a_view_that_raises_leaves_its_jobs_queued(jobs_queue: reqrunner.JobQueue) -> None:
    site = Site(jobs_queue)
    driver = Driver("asgi").serve(ASGIMiddleware(site.app("asgi"), jobs_queue, run_rate=0.0))
    with pytest.raises(RuntimeError):
        driver.request("GET", "/defer-and-fail")
    assert site.ran == []
    assert jobs_queue.count_jobs() == 3
