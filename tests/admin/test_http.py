"""Every admin route and action through an HTTP client, on the ASGI and the WSGI adapter."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

import reqrunner
from reqrunner.web.admin import BasicAuth

from .conftest import ADMIN, Site, hook, hooks, join_runs, post, token
from .site_app import PASSWORD, USER, register

# Every route of the admin, as (method, path); none may answer without access.
ROUTES = [
    ("GET", ""),
    ("GET", "/"),
    ("GET", "/jobs?state=failed"),
    ("GET", "/jobs/1"),
    ("GET", "/api/status?ids=1"),
    ("GET", "/static/admin.css"),
    ("GET", "/static/admin.js"),
    ("POST", "/jobs/1/retry"),
    ("POST", "/jobs/1/delete"),
    ("POST", "/jobs/1/release"),
    ("POST", "/failed/retry"),
    ("POST", "/failed/delete"),
    ("POST", "/run"),
]


def _fail(queue: reqrunner.JobQueue, text: str = "boom") -> int:
    """A failed job (``shop.broken`` has one attempt)."""
    job_id = queue.dispatch("shop.broken", text)
    queue.run(max_jobs=1)
    info = queue.get(job_id)
    assert info is not None and info.state is reqrunner.JobState.FAILED
    return job_id


def _reserve(queue: reqrunner.JobQueue, job_id: int, progress: float, label: str) -> None:
    """Mark a job as held by a runner busy elsewhere (as a live or a dead runner leaves it):
    claimed as a runner claims it, then its lease and progress set."""
    assert [job.id for job in queue.store.cycle([], claim=1, ids=[job_id]).claimed] == [job_id]
    with queue.engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE reqrunner_jobs SET reserved_until = {time.time() + 600}, "
            f"progress = {progress}, label = '{label}' WHERE id = {job_id}"
        )


def _counts(html: str) -> dict[str, int]:
    return {state: int(n) for state, n in hooks(html, "data-count")}


# -- access ----------------------------------------------------------------------------------------


def test_admin_is_off_without_an_access_check(site: Site) -> None:
    with site.client(None) as client:
        for method, path in ROUTES:
            assert client.request(method, ADMIN + path).status_code == 404, path


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_basic_auth_refuses_every_route_without_the_password(
    site: Site, method: str, path: str
) -> None:
    failed = _fail(site.queue)
    guard = BasicAuth(USER, PASSWORD, realm="Shop admin")
    for auth in (None, (USER, "wrong"), ("someone", PASSWORD)):
        with site.client(guard, auth=auth) as client:
            response = client.request(method, ADMIN + path, data={"csrf": "x"})
            assert response.status_code == 401, (path, auth)
            assert response.headers["www-authenticate"].startswith('Basic realm="Shop admin"')
            assert "Queue" not in response.text
    join_runs()
    info = site.queue.get(failed)
    assert info is not None and info.state is reqrunner.JobState.FAILED


def test_a_refusing_check_closes_every_route(site: Site) -> None:
    failed = _fail(site.queue)
    with site.client(lambda request: False, auth=None) as client:
        token_page = client.get(ADMIN)
        assert token_page.status_code == 403 and "csrf" not in token_page.text
        for method, path in ROUTES:
            response = client.request(method, ADMIN + path, data={"csrf": "x"})
            assert response.status_code == 403, path
    join_runs()
    info = site.queue.get(failed)
    assert info is not None and info.state is reqrunner.JobState.FAILED


def test_basic_auth_lets_the_right_user_in(client: httpx.Client) -> None:
    response = client.get(ADMIN)
    assert response.status_code == 200
    assert "Queue Manager" in response.text
    assert response.headers["content-type"].startswith("text/html")


def test_callable_check_gets_the_request_and_refuses_with_403(site: Site) -> None:
    seen: list[reqrunner.web.http.Request] = []

    def staff_only(request: reqrunner.web.http.Request) -> bool:
        seen.append(request)
        return request.headers.get("x-staff") == "yes"

    with site.client(staff_only, auth=None) as client:
        refused = client.get(ADMIN)
        assert refused.status_code == 403
        assert "www-authenticate" not in refused.headers
        assert client.get(ADMIN, headers={"X-Staff": "yes"}).status_code == 200
    assert seen[0].client is not None
    assert seen[0].path == "/admin"


@pytest.mark.parametrize(
    "check",
    [lambda request: "yes", lambda request: 1, lambda request: 1 / 0],
    ids=["truthy-string", "one", "raises"],
)
def test_a_check_that_does_not_return_true_refuses(site: Site, check: object) -> None:
    with site.client(check, auth=None) as client:  # type: ignore[arg-type]
        assert client.get(ADMIN).status_code == 403


def test_admin_must_be_a_check(sqlite_url: str) -> None:
    queue = reqrunner.JobQueue(sqlite_url)
    with pytest.raises(TypeError, match="admin must be callable"):
        reqrunner.web.asgi.ASGIMiddleware(lambda *a: None, queue, admin="s3cret")  # type: ignore[arg-type]


def test_basic_auth_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="non-empty password"):
        BasicAuth("admin", "")
    with pytest.raises(ValueError, match="':'"):
        BasicAuth("ad:min", "pw")
    with pytest.raises(ValueError, match="realm"):
        BasicAuth("admin", "pw", realm='say "hi"')
    assert "pw" not in repr(BasicAuth("admin", "pw"))


# -- pages -----------------------------------------------------------------------------------------


def test_overview_shows_counts_age_throughput_and_health(site: Site, client: httpx.Client) -> None:
    queue = site.queue
    _fail(queue)
    queue.dispatch("shop.noop")
    queue.run(max_jobs=1)  # one done
    old = queue.dispatch("shop.noop")
    queue.dispatch("shop.noop")
    queue.jobs["shop.noop"].using(delay=3600).dispatch()
    _reserve(queue, queue.dispatch("shop.noop"), 0.25, "a quarter")
    with queue.engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE reqrunner_jobs SET available_at = available_at - 7300 WHERE id = {old}"
        )
    queue.set_meta(
        "reqrunner.health.last_run",
        json.dumps({"at": time.time() - 30, "via": "sync", "ran": 7, "succeeded": 6,
                    "retried": 0, "failed": 1, "elapsed": 1.5, "stopped_by": "max_jobs"}),
    )  # fmt: skip
    queue.set_meta(
        "reqrunner.health.self_request",
        json.dumps({"at": time.time(), "url": "http://127.0.0.1:9/_reqrunner/run", "ok": False,
                    "error": "ConnectError"}),
    )  # fmt: skip
    for pid, seen in ((41, time.time()), (42, time.time() - 600)):
        queue.set_meta(
            f"cli.worker.box.{pid}",
            json.dumps({"host": "box", "pid": pid, "started": time.time() - 100, "seen": seen,
                        "queues": ["mail"]}),
        )  # fmt: skip

    html = client.get(ADMIN).text
    assert _counts(html) == {"waiting": 2, "delayed": 1, "reserved": 1, "failed": 1, "done": 1}
    assert hook(html, "data-oldest-due") == "2.0 h"
    assert 'role="alert"' in html
    # Finished in the last hour: 1 done, none retried, 1 failed -> 50 %.
    assert dict(hooks(html, "data-finished"))["hour"] == "Last hour 1 0 1 50%"
    assert hook(html, "data-last-run").endswith(
        "via sync: 7 ran, 6 succeeded, 0 retried, 1 failed in 2 s; stopped by max_jobs"
    )
    assert hook(html, "data-self-request").endswith(
        "to http://127.0.0.1:9/_reqrunner/run : failed (ConnectError)"
    )
    workers = hook(html, "data-workers")
    assert "pid 41" in workers and "pid 42" not in workers  # 42's heartbeat is stale
    assert "a quarter" in html and 'value="0.250"' in html
    assert [state for state, _ in hooks(html, "data-breaker")] == ["closed"]


def test_overview_counts_finished_jobs_the_queue_does_not_keep(site: Site) -> None:
    site.queue.store.keep_done = False
    site.queue.dispatch("shop.noop")
    site.queue.run()
    with site.client(BasicAuth(USER, PASSWORD)) as client:
        html = client.get(ADMIN).text
    assert "Done (not kept)" in html
    assert dict(hooks(html, "data-finished"))["hour"] == "Last hour 1 0 0 0%"


def test_overview_says_when_nothing_is_due(client: httpx.Client) -> None:
    html = client.get(ADMIN).text
    assert "Nothing is due." in html
    assert hook(html, "data-last-run") == "none recorded yet"
    assert hook(html, "data-workers") == "none in the last 35 s"


def test_overview_shows_a_working_tick_url(site: Site, client: httpx.Client) -> None:
    url = hook(client.get(ADMIN).text, "data-tick-url")
    assert url.startswith("http://testserver/_reqrunner/tick?token=")
    site.queue.dispatch("shop.noop")
    anonymous = httpx.Client(transport=client._transport, base_url="http://testserver")
    assert anonymous.get(url).status_code == 202  # no admin credentials needed: the token is
    join_runs()
    stats = site.queue.stats()
    assert (stats.waiting, stats.done) == (0, 1)


def test_overview_warns_when_nothing_runs_jobs(site: Site) -> None:
    site.queue.dispatch("shop.noop")
    with site.client(BasicAuth(USER, PASSWORD), run_rate=0) as client:
        assert "no worker has reported" in client.get(ADMIN).text
        site.queue.set_meta(
            "cli.worker.box.7",
            json.dumps({"host": "box", "pid": 7, "started": time.time(), "seen": time.time(),
                        "queues": None}),
        )  # fmt: skip
        html = client.get(ADMIN).text
        assert "no worker has reported" not in html
        assert "pid 7, all queues" in hook(html, "data-workers")
    with site.client(BasicAuth(USER, PASSWORD)) as client:
        site.queue.delete_meta("cli.worker.box.7")
        assert "no worker has reported" not in client.get(ADMIN).text


def test_lists_page_and_filter(site: Site, client: httpx.Client) -> None:
    queue = site.queue
    queue.jobs["shop.noop"].dispatch_many([{}] * 27)
    queue.jobs["shop.noop"].using(queue="mail").dispatch_many([{}] * 2)
    queue.dispatch("shop.broken", "x")

    def ids(path: str) -> list[int]:
        response = client.get(ADMIN + path)
        assert response.status_code == 200
        return [int(job_id) for job_id, _ in hooks(response.text, "data-job")]

    first, second = ids("/jobs?state=waiting"), ids("/jobs?state=waiting&page=2")
    assert len(first) == 25 and len(second) == 5
    assert not set(first) & set(second)
    assert "26–30 of 30" in client.get(ADMIN + "/jobs?state=waiting&page=2").text
    assert len(ids("/jobs?state=waiting&name=broken")) == 1
    assert len(ids("/jobs?state=waiting&queue=mail")) == 2
    assert ids("/jobs?state=failed") == []
    assert ids("/jobs?state=nonsense&page=x") == first  # falls back to the first waiting page


def test_every_list_renders(site: Site, client: httpx.Client) -> None:
    _fail(site.queue, "listed failure")
    for state in ("waiting", "delayed", "reserved", "failed", "done"):
        response = client.get(ADMIN + f"/jobs?state={state}")
        assert response.status_code == 200
        assert ("ValueError: listed failure" in response.text) == (state == "failed")


def test_job_detail_has_arguments_timestamps_history_and_traceback(
    site: Site, client: httpx.Client
) -> None:
    queue = site.queue
    job_id = queue.jobs["shop.flaky"].dispatch(12, note="ünï")
    queue.run(max_jobs=1)
    html = client.get(ADMIN + f"/jobs/{job_id}").text
    assert f"Job #{job_id}" in html and "shop.flaky" in html
    assert "Confirm order 12" in html
    arguments = json.loads(hook(html, "data-arguments"))
    assert arguments == {"args": [12], "kwargs": {"note": "ünï"}}
    assert "Traceback (most recent call last)" in hook(html, "data-traceback")
    assert [text for label, text in hooks(html, "data-label") if label == "Outcome"] == ["raised"]
    assert len(hooks(html, "datetime")) >= 4  # created, due, finished, history
    assert "1 of 1" in html


def test_missing_job_and_unknown_paths(client: httpx.Client) -> None:
    assert client.get(ADMIN + "/jobs/999").status_code == 404
    assert "Job not found" in client.get(ADMIN + "/jobs/999").text
    assert client.get(ADMIN + "/nowhere").status_code == 404
    assert client.get(ADMIN + "/static/../site.py").status_code == 404
    assert client.post(ADMIN + "/nowhere", data={"csrf": token(client)}).status_code == 404
    assert client.put(ADMIN).status_code == 405


def test_static_files_are_served_from_the_package(client: httpx.Client) -> None:
    html = client.get(ADMIN).text
    css = re.search(r'href="([^"]+admin\.css\?v=\w+)"', html)
    js = re.search(r'src="([^"]+admin\.js\?v=\w+)"', html)
    assert css and js
    response = client.get(css.group(1))
    assert response.headers["content-type"].startswith("text/css")
    assert "@media (max-width" in response.text
    response = client.get(js.group(1))
    assert response.headers["content-type"].startswith("text/javascript")
    assert "data-watch" in response.text
    # Nothing on the page comes from elsewhere, and the policy would not let it.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "default-src 'none'" in client.get(ADMIN).headers["content-security-policy"]


def test_status_endpoint_reports_counts_and_progress(site: Site, client: httpx.Client) -> None:
    queue = site.queue
    running = queue.dispatch("shop.noop")
    _reserve(queue, running, 0.4, "40 of 100")
    waiting = queue.dispatch("shop.noop")
    response = client.get(ADMIN + f"/api/status?ids={running},{waiting},999,x")
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["counts"]["reserved"] == 1 and body["counts"]["waiting"] == 1
    assert body["jobs"][str(running)]["progress"] == 0.4
    assert body["jobs"][str(running)]["label"] == "40 of 100"
    assert body["jobs"][str(waiting)]["state"] == "waiting"
    assert body["jobs"]["999"] is None
    assert set(body["jobs"]) == {str(running), str(waiting), "999"}


# -- escaping --------------------------------------------------------------------------------------


def test_error_text_and_arguments_show_as_text(site: Site, client: httpx.Client) -> None:
    evil = "<script>alert('pwned')</script>"
    job_id = _fail(site.queue, evil)
    queue_name = '"><img src=x onerror=alert(1)>'
    site.queue.jobs["shop.noop"].using(queue=queue_name, delay=60).dispatch()
    pages = [
        ADMIN,
        ADMIN + "/jobs?state=failed",
        ADMIN + f"/jobs/{job_id}",
        ADMIN + "/jobs?state=delayed&name=" + evil,
    ]
    for page in pages:
        html = client.get(page).text
        assert "<script>alert" not in html, page
        assert "<img src=x" not in html, page
    detail = client.get(ADMIN + f"/jobs/{job_id}").text
    assert "ValueError: &lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in detail
    assert (
        "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
        in client.get(ADMIN + "/jobs?state=delayed").text
    )


def test_flash_messages_cannot_be_made_to_say_anything(client: httpx.Client) -> None:
    html = client.get(ADMIN + "?done=retried&job=<b>hi</b>").text
    assert "<b>hi</b>" not in html and "will run again" not in html
    assert "Your site was hacked" not in client.get(ADMIN + "?done=Your+site+was+hacked").text


# -- actions ---------------------------------------------------------------------------------------


def test_retry_runs_the_job_again(site: Site, client: httpx.Client) -> None:
    job_id = site.queue.jobs["shop.flaky"].dispatch(7, note="n")
    site.queue.run(max_jobs=1)
    site.marker.touch()  # the mail server is fixed
    response = post(client, f"/jobs/{job_id}/retry", next=f"/jobs/{job_id}")
    assert response.status_code == 303
    assert response.headers["location"] == f"{ADMIN}/jobs/{job_id}?done=retried&job={job_id}"
    info = site.queue.get(job_id)
    assert info is not None and info.state is reqrunner.JobState.DONE
    assert "will run again" in client.get(response.headers["location"]).text


def test_retry_without_in_request_runs_leaves_the_job_to_workers(site: Site) -> None:
    job_id = _fail(site.queue)
    with site.client(BasicAuth(USER, PASSWORD), run_rate=0) as client:
        assert post(client, f"/jobs/{job_id}/retry").status_code == 303
    info = site.queue.get(job_id)
    assert info is not None and info.state is reqrunner.JobState.WAITING and info.attempts == 0


def test_retry_of_a_done_job_says_it_was_not_retried(site: Site, client: httpx.Client) -> None:
    job_id = site.queue.dispatch("shop.noop")
    site.queue.run()
    response = post(client, f"/jobs/{job_id}/retry")
    assert "done=not-retried" in response.headers["location"]


def test_delete(site: Site, client: httpx.Client) -> None:
    job_id = _fail(site.queue)
    response = post(client, f"/jobs/{job_id}/delete", next="/jobs?state=failed&name=shop")
    assert response.status_code == 303
    assert response.headers["location"] == (
        f"{ADMIN}/jobs?state=failed&name=shop&done=deleted&job={job_id}"
    )
    assert site.queue.get(job_id) is None
    assert "done=not-deleted" in post(client, f"/jobs/{job_id}/delete").headers["location"]


def test_release_frees_a_stuck_reservation(site: Site, client: httpx.Client) -> None:
    job_id = site.queue.dispatch("shop.noop")
    _reserve(site.queue, job_id, 0.1, "stuck")
    assert "Release" in client.get(ADMIN + f"/jobs/{job_id}").text
    response = post(client, f"/jobs/{job_id}/release", next=f"/jobs/{job_id}")
    assert "done=released" in response.headers["location"]
    info = site.queue.get(job_id)
    assert info is not None and info.state is reqrunner.JobState.WAITING
    assert "done=not-released" in post(client, f"/jobs/{job_id}/release").headers["location"]


def test_retry_all_and_delete_all_failed(site: Site, client: httpx.Client) -> None:
    site.marker.touch()
    first, second = _fail(site.queue), _fail(site.queue)
    kept = site.queue.dispatch("shop.noop")
    with site.client(BasicAuth(USER, PASSWORD), run_rate=0) as quiet:
        response = post(quiet, "/failed/retry")
    assert "done=retried-all&n=2" in response.headers["location"]
    assert site.queue.count_jobs("failed") == 0
    site.queue.run()  # shop.broken fails again
    assert site.queue.count_jobs("failed") == 2
    response = post(client, "/failed/delete")
    assert "done=deleted-all&n=2" in response.headers["location"]
    assert site.queue.get(first) is None and site.queue.get(second) is None
    assert site.queue.get(kept) is not None
    assert "2 failed job(s) were deleted." in client.get(response.headers["location"]).text


def test_run_now_runs_a_bounded_batch(site: Site) -> None:
    site.queue.jobs["shop.noop"].dispatch_many([{}] * 5)
    with site.client(BasicAuth(USER, PASSWORD), run_rate=0, max_jobs=3) as client:
        response = post(client, "/run")
    assert response.status_code == 303
    assert response.headers["location"] == f"{ADMIN}?done=run-started"
    assert site.queue.count_jobs("done") == 3 and site.queue.count_jobs("due") == 2
    last_run = json.loads(site.queue.get_meta("reqrunner.health.last_run") or "{}")
    assert last_run["via"] == "admin" and last_run["stopped_by"] == "max_jobs"


def test_redirects_stay_inside_the_admin(site: Site, client: httpx.Client) -> None:
    job_id = _fail(site.queue)
    for target in ("//evil.example/x", "https://evil.example/", "\\\\evil.example"):
        response = post(client, f"/jobs/{job_id}/delete", next=target)
        assert response.headers["location"].startswith(ADMIN + "?"), target


# -- CSRF ------------------------------------------------------------------------------------------


def test_csrf_refuses_forged_posts(site: Site, client: httpx.Client) -> None:
    job_id = _fail(site.queue)
    action = ADMIN + f"/jobs/{job_id}/delete"
    good = token(client)

    assert client.post(action).status_code == 403  # no token
    assert client.post(action, data={"csrf": "1.abc"}).status_code == 403  # made up
    cross = client.post(action, data={"csrf": good}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    # A token is bound to its browser's cookie: another browser's token does not fit.
    with site.client(BasicAuth(USER, PASSWORD)) as other:
        theirs = token(other)
    assert client.post(action, data={"csrf": theirs}).status_code == 403
    # Without the cookie at all (a cross-site form under SameSite=Strict).
    with site.client(BasicAuth(USER, PASSWORD)) as fresh:
        refused = fresh.post(action, data={"csrf": good})
        assert refused.status_code == 403 and "Form expired" in refused.text
    assert site.queue.get(job_id) is not None

    # Behind a proxy that rewrites Host, a genuine form's Origin names the public host.
    genuine = {"Origin": "https://shop.example", "Sec-Fetch-Site": "same-origin"}
    ok = client.post(action, data={"csrf": good}, headers=genuine)
    assert ok.status_code == 303
    assert site.queue.get(job_id) is None


def test_csrf_cookie_is_strict_and_http_only(client: httpx.Client) -> None:
    cookie = client.get(ADMIN).headers["set-cookie"]
    assert cookie.startswith("reqrunner_csrf=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and f"Path={ADMIN}" in cookie
    # The browser has it now: the next page does not set another.
    assert "set-cookie" not in client.get(ADMIN).headers


def test_csrf_cookie_is_found_among_several_cookie_headers(site: Site) -> None:
    # Over HTTP/2 a browser may send each cookie in a Cookie header of its own.
    job_id = _fail(site.queue)
    with site.client(BasicAuth(USER, PASSWORD)) as client:
        good = token(client)
        cookie = client.cookies["reqrunner_csrf"]
    headers = [("cookie", "theme=dark"), ("cookie", f"reqrunner_csrf={cookie}")]
    with site.client(BasicAuth(USER, PASSWORD)) as fresh:
        action = ADMIN + f"/jobs/{job_id}/delete"
        response = fresh.post(action, data={"csrf": good}, headers=headers)
    assert response.status_code == 303
    assert site.queue.get(job_id) is None


def test_csrf_on_every_action(site: Site, client: httpx.Client) -> None:
    job_id = _fail(site.queue)
    token(client)  # the cookie is there; only the token is missing
    for method, path in ROUTES:
        if method == "POST":
            response = client.post(ADMIN + path.replace("/1/", f"/{job_id}/"))
            assert response.status_code == 403, path
    join_runs()
    info = site.queue.get(job_id)
    assert info is not None and info.state is reqrunner.JobState.FAILED


# -- every database --------------------------------------------------------------------------------


def test_overview_lists_and_actions_on_every_database(
    queue: reqrunner.JobQueue, tmp_path: Path
) -> None:
    """The overview's counters (finished jobs per hour) and the actions, on each dialect."""
    queue.store.keep_done = True
    register(queue, f"{tmp_path}/never")
    failed = _fail(queue, "<script>x</script>")
    queue.dispatch("shop.noop")
    queue.run()
    with Site("asgi", queue, tmp_path).client(BasicAuth(USER, PASSWORD)) as client:
        html = client.get(ADMIN).text
        assert dict(hooks(html, "data-finished"))["hour"] == "Last hour 1 0 1 50%"
        assert "&lt;script&gt;x&lt;/script&gt;" in client.get(ADMIN + "/jobs?state=failed").text
        assert post(client, f"/jobs/{failed}/delete").status_code == 303
    assert queue.get(failed) is None
