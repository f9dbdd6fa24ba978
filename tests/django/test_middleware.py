"""The MIDDLEWARE entry on gunicorn (two sync workers) and uvicorn: the visitor's page is
complete before the run that follows it, other visitors are served meanwhile, and the run
happens in the server's own processes."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.django.test_servers import SITE, _env, _results
from tests.live import BIN, free_port, started, wait_for

NAP = 2.0

SERVERS = {
    "gunicorn": lambda port: [
        str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}",
        "djsite.plain_wsgi:application",
    ],
    "uvicorn": lambda port: [
        str(BIN / "uvicorn"), "djsite.plain_asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning",
    ],
}  # fmt: skip


@pytest.mark.parametrize("server", list(SERVERS))
def test_the_middleware_runs_tasks_after_the_page(server: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**_env(tmp_path), "DJANGO_SETTINGS_MODULE": "djsite.settings_mw"}
    log = tmp_path / "server.log"
    with started(SERVERS[server](port), port=port, log=log, cwd=SITE, env=env) as running:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            task_id = client.post("/enqueue/nap", json={"args": [NAP]}).json()["id"]
            started_at = time.perf_counter()
            page = client.get("/", headers={"Connection": "close"})
            page_took = time.perf_counter() - started_at
            assert page.status_code == 200 and "Home" in page.text
            # Another visitor while the task sleeps in the first page's process.
            time.sleep(0.3)
            with httpx.Client(base_url=running.url, timeout=30) as other:
                t0 = time.perf_counter()
                assert other.get("/enqueue_status_is_not_a_page").status_code == 404
                other_took = time.perf_counter() - t0
        probe_env = {**env, "DJANGO_SETTINGS_MODULE": "djsite.settings"}
        wait_for(
            lambda: _results(probe_env, [task_id])[0].get("status") == "SUCCESSFUL",
            NAP + 20,
            "the task to run",
        )
        found = _results(probe_env, [task_id])[0]
        pids = {running.process.pid} | {
            p.pid for p in psutil.Process(running.process.pid).children(recursive=True)
        }
    print(f"{server}: page {page_took * 1000:.1f} ms, other visitor {other_took * 1000:.1f} ms")
    assert page_took < NAP / 2, f"the page waited for the run: {page_took:.2f} s"
    assert other_took < NAP / 2, f"another visitor waited for the run: {other_took:.2f} s"
    assert found["return_value"] == NAP
    assert int(found["worker_ids"][0].rsplit(":", 1)[1]) in pids
