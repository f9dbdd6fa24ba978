"""The page views the middleware leaves alone, through both adapters: a failed roll hands the
app the server's own callables, and a cached "nothing due" answers before the page is read."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import reqrunner
from reqrunner.web.asgi import ASGIMiddleware
from reqrunner.web.policy import PageView, default_qualify
from reqrunner.web.wsgi import WSGIMiddleware

from .conftest import HTML, Driver


@pytest.mark.parametrize("mode", ["sync", "js"])
def test_with_nothing_due_the_page_is_not_read(
    driver: Driver, jobs_queue: reqrunner.JobQueue, mode: str
) -> None:
    seen: list[str] = []

    def rule(view: PageView) -> bool:
        seen.append(view.path)
        return default_qualify(view)

    driver.wrap(jobs_queue, mode=mode, qualify=rule)
    assert driver.request("GET", "/html").body == HTML  # asks the database once: nothing due
    assert seen == ["/html"]
    for _ in range(5):
        assert driver.request("GET", "/html").body == HTML
    assert seen == ["/html"]  # answered from the cache, before the rule or any header
    jobs_queue.dispatch("noop")  # a local dispatch drops the cached answer
    result = driver.request("GET", "/html")
    assert seen == ["/html", "/html"]
    if mode == "sync":
        assert jobs_queue.stats().waiting == 0
    else:
        assert b"/_reqrunner/trigger.js" in result.body


def test_a_failed_roll_hands_the_asgi_app_the_servers_callables(
    jobs_queue: reqrunner.JobQueue,
) -> None:
    seen: list[tuple[object, object]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((receive, send))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": HTML})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    middleware = ASGIMiddleware(app, jobs_queue, run_rate=0)
    scope = {"type": "http", "method": "GET", "path": "/page", "headers": []}
    anyio.run(middleware, scope, receive, send)
    assert seen == [(receive, send)]


def test_a_failed_roll_hands_the_wsgi_app_the_servers_start_response(
    jobs_queue: reqrunner.JobQueue,
) -> None:
    seen: list[object] = []
    body = [HTML]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(start_response)
        start_response("200 OK", [("Content-Type", "text/html")])
        return body

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        pass

    middleware = WSGIMiddleware(app, jobs_queue, run_rate=0)
    assert middleware({"PATH_INFO": "/page"}, start_response) is body
    assert seen == [start_response]
