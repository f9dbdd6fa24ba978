"""``js`` mode's script injection, through both adapters, and the streaming injector."""

from __future__ import annotations

import re

import pytest

import reqrunner
from reqrunner.web.signing import Signer
from reqrunner.web.trigger import Injector

from .conftest import HTML, STREAM, Driver

SECRET = "a-site-secret"
TAG = re.compile(rb'<script src="/_reqrunner/trigger.js" data-url="/_reqrunner/run" '
                 rb'data-token="([^"]+)" async( nonce="[^"]+")?></script>')  # fmt: skip


def js(driver: Driver, queue: reqrunner.JobQueue) -> Driver:
    return driver.wrap(queue, mode="js", secret=SECRET)


def test_script_injected_when_due_and_token_is_valid(
    driver: Driver, jobs_queue: reqrunner.JobQueue
) -> None:
    js(driver, jobs_queue)
    jobs_queue.dispatch("noop")
    result = driver.request("GET", "/html")
    match = TAG.search(result.body)
    assert match is not None
    assert result.body == HTML.replace(b"</body>", match.group(0) + b"</body>")
    assert result.headers["content-length"] == str(len(result.body))
    assert Signer(SECRET).verify(match.group(1).decode(), "run")
    # js mode leaves the running to the browser: nothing ran in the page's own request
    assert jobs_queue.stats().waiting == 1


def test_no_script_when_nothing_is_due(driver: Driver, jobs_queue: reqrunner.JobQueue) -> None:
    js(driver, jobs_queue)
    result = driver.request("GET", "/html")
    assert result.body == HTML
    assert result.headers["content-length"] == str(len(HTML))


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        pytest.param("/json", {}, id="json"),
        pytest.param("/html", {"X-Requested-With": "XMLHttpRequest"}, id="ajax"),
        pytest.param("/gzip", {}, id="compressed"),
        pytest.param("/public", {}, id="cache-control-public"),
        pytest.param("/shared", {}, id="s-maxage"),
        pytest.param("/big", {}, id="too-large"),
        pytest.param("/error", {}, id="5xx"),
    ],
)
def test_no_script_into(
    driver: Driver, jobs_queue: reqrunner.JobQueue, path: str, headers: dict[str, str]
) -> None:
    js(driver, jobs_queue)
    jobs_queue.dispatch("noop")
    result = driver.request("GET", path, headers)
    assert b"<script" not in result.body
    assert result.headers["content-length"] == str(len(result.body))


def test_private_pages_and_fragments_get_it(driver: Driver, jobs_queue: reqrunner.JobQueue) -> None:
    js(driver, jobs_queue)
    jobs_queue.dispatch("noop")
    private = driver.request("GET", "/private")
    assert TAG.search(private.body)
    fragment = driver.request("GET", "/fragment")
    # No </body>: the tag goes at the end, where a browser still runs it.
    assert fragment.body.startswith(b"<p>no closing tag</p><script")
    assert fragment.headers["content-length"] == str(len(fragment.body))


def test_nonce_from_the_pages_csp(driver: Driver, jobs_queue: reqrunner.JobQueue) -> None:
    js(driver, jobs_queue)
    jobs_queue.dispatch("noop")
    result = driver.request("GET", "/csp")
    assert b' nonce="r4nd0m"></script></body>' in result.body


def test_streamed_page(driver: Driver, jobs_queue: reqrunner.JobQueue) -> None:
    js(driver, jobs_queue)
    jobs_queue.dispatch("noop")
    result = driver.request("GET", "/stream")
    match = TAG.search(result.body)
    assert match is not None
    assert result.body == b"".join(STREAM).replace(b"</body>", match.group(0) + b"</body>")
    if driver.protocol == "asgi":
        # Streamed on, not buffered whole: the first chunk left (less a few bytes that might
        # start "</body>") before the next one came.
        assert len(driver.chunks) == len(STREAM)
        assert driver.chunks[0] == STREAM[0][:-6]
        assert "content-length" not in result.headers
    else:
        assert result.headers["content-length"] == str(len(result.body))


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_injector_finds_the_last_body_tag_across_chunk_borders(size: int) -> None:
    page = b"<html><BODY><p>a</body> in text</p></Body ></html>"
    injector = Injector(b"<TAG>")
    out = b""
    for i in range(0, len(page), size):
        out += injector.feed(page[i : i + size])
    out += injector.finish()
    assert out == b"<html><BODY><p>a</body> in text</p><TAG></Body ></html>"


def test_injector_releases_what_precedes_the_tag() -> None:
    injector = Injector(b"<TAG>")
    assert injector.feed(b"<html><body>" + b"x" * 100) == b"<html><body>" + b"x" * 94
    assert injector.feed(b"</body></html>") == b"x" * 6
    assert injector.finish() == b"<TAG></body></html>"
