"""The admin never answers 500: odd query strings, odd credentials, a database that is down."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest

from reqrunner.web.admin import BasicAuth

from .conftest import ADMIN, Site
from .site_app import PASSWORD, USER, make_queue, wrap

ODD = [
    "/?page=%C2%B2",
    "/jobs?page=%C2%B2",
    "/jobs?page=99999999999999999999",
    "/jobs?state=failed&page=-1",
    "/api/status?ids=%C2%B2",
    "/api/status?ids=99999999999999999999",
    "/api/status?ids=1,%C2%B2,99999999999999999999",
    "/jobs?name=%00",
    "/jobs?queue=%00",
    "/jobs?name=%ED%A0%80",
    "/?done=retried&job=%C2%B2",
    "/jobs/99999999999999999999",
]


@pytest.fixture(params=["asgi", "wsgi"])
def any_site(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[Site]:
    """The admin test site on every database, through each adapter."""
    queue = make_queue(db_url, str(tmp_path / "marker"))
    yield Site(request.param, queue, tmp_path / "marker")
    queue.close()


@pytest.mark.parametrize("query", ODD)
def test_odd_query_strings_get_a_page_not_a_500(
    any_site: Site, query: str, caplog: pytest.LogCaptureFixture
) -> None:
    any_site.queue.dispatch("shop.flaky", 1, "x")
    with any_site.client(BasicAuth(USER, PASSWORD)) as client:
        response = client.get(ADMIN + query)
    assert response.status_code in (200, 404), response.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "authorization",
    [b"Basic \xc3\xa9t\xc3\xa9", b"Basic \xff\xfe", "Basic ²".encode(), b"Basic %%%"],
)
def test_odd_credentials_are_refused_quietly(
    site: Site, authorization: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    if site.protocol == "asgi":
        with site.client(BasicAuth(USER, PASSWORD), auth=None) as client:
            status = client.get(ADMIN, headers={"authorization": authorization}).status_code
    else:
        # httpx's WSGI transport cannot send such bytes; a WSGI server hands them over as
        # latin-1 text, as here.
        environ: dict[str, object] = {}
        setup_testing_defaults(environ)
        environ.update(PATH_INFO=ADMIN, HTTP_AUTHORIZATION=authorization.decode("latin-1"))
        statuses: list[str] = []
        app = wrap("wsgi", site.queue, BasicAuth(USER, PASSWORD))
        body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
        b"".join(body)  # type: ignore[arg-type]
        status = int(statuses[0].split()[0])
    assert status == 401
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_database_that_is_down_gets_a_503_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = tmp_path / "no-such-directory" / "jobs.sqlite3"
    queue = make_queue(f"sqlite:///{gone}", str(tmp_path / "marker"))
    for protocol in ("asgi", "wsgi"):
        with Site(protocol, queue, tmp_path).client(BasicAuth(USER, PASSWORD)) as client:
            for page in ("", "/jobs", "/api/status?ids=1"):
                response = client.get(ADMIN + page)
                assert response.status_code == 503, (protocol, page, response.text)
                assert "cannot be reached" in response.text
    assert not [r for r in caplog.records if r.exc_info]
    queue.close()
