"""``after_response=True`` through both adapters, in-process: the job runs once the response
is complete, whatever ``run_rate`` says, before the run a triggering page starts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

import reqrunner
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


def test_outside_a_request_it_is_an_ordinary_dispatch(jobs_queue: reqrunner.JobQueue) -> None:
    site = Site(jobs_queue)
    site.handle("/defer")
    assert site.ran == []
    assert jobs_queue.count_jobs() == 3
    assert jobs_queue.run().succeeded == 3


def test_a_view_that_raises_leaves_its_jobs_queued(jobs_queue: reqrunner.JobQueue) -> None:
    site = Site(jobs_queue)
    driver = Driver("asgi").serve(ASGIMiddleware(site.app("asgi"), jobs_queue, run_rate=0.0))
    with pytest.raises(RuntimeError):
        driver.request("GET", "/defer-and-fail")
    assert site.ran == []
    assert jobs_queue.count_jobs() == 3
