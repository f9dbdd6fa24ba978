"""The test project served for real: gunicorn with two workers (WSGI) and uvicorn (ASGI), its
views enqueueing Django tasks that page views then run in the web workers, and a process of
its own asking Django's API for the results; then the same project drained by
``reqrunner work`` instead. CI runs this on Django 5.2 (the backport) and on Django 6."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.live import BIN, free_port, started, wait_for

SITE = Path(__file__).resolve().parent / "site"
PROBE = SITE / "probe.py"

SERVERS = {
    "gunicorn": lambda port: [
        str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "djsite.wsgi:application",
    ],
    "uvicorn": lambda port: [
        str(BIN / "uvicorn"), "djsite.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning",
    ],
}  # fmt: skip


def _env(data: Path, run_rate: str = "1") -> dict[str, str]:
    return {
        "DJSITE_DATA": str(data),
        "DJSITE_RUN_RATE": run_rate,
        "DJANGO_SETTINGS_MODULE": "djsite.settings",
        "PYTHONPATH": str(SITE),
        "REQRUNNER_DATABASE_URL": "",
    }


def _results(env: dict[str, str], ids: list[str]) -> list[dict[str, Any]]:
    """What Django's ``get_result`` says of ``ids`` in a process of its own."""
    done = subprocess.run(
        [sys.executable, str(PROBE), *ids],
        env={**_clean_environ(), **env},
        cwd=SITE,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def _clean_environ() -> dict[str, str]:
    import os  # noqa: PLC0415

    return {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}


def _enqueue_all(client: httpx.Client) -> dict[str, str]:
    def post(path: str, body: dict[str, Any] | None = None) -> str:
        response = client.post(path, json=body or {})
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    return {
        "add": post("/enqueue/add", {"args": [2, 3]}),
        "fail": post("/enqueue/fail", {"args": ["no such order"]}),
        "later": post("/enqueue/add", {"args": [1, 1], "in_an_hour": True}),
        "context": post("/enqueue/whoami", {"args": ["hello"]}),
        "async": post("/aenqueue"),
        "rollback": post("/rollback"),
        "commit": post("/commit"),
    }


def _check(found: dict[str, dict[str, Any]], ids: dict[str, str]) -> None:
    assert found["add"]["status"] == "SUCCESSFUL" and found["add"]["return_value"] == 5
    assert found["add"]["module_path"] == "djsite.tasks.add" and all(found["add"]["times"])
    assert found["fail"]["status"] == "FAILED"
    ((path, tb),) = found["fail"]["errors"]
    assert path == "builtins.LookupError" and found["fail"]["exception_class"] == "LookupError"
    assert "no such order" in tb and "Traceback" in tb
    assert found["later"]["status"] == "READY"
    assert found["context"]["return_value"] == {
        "attempt": 1, "id": ids["context"], "tag": "hello",
    }  # fmt: skip
    assert found["async"]["return_value"] == 42
    assert found["rollback"] == {"missing": True}
    assert ids["commit"].startswith("c") and found["commit"]["return_value"] == 42


@pytest.mark.parametrize("server", list(SERVERS))
def test_page_views_run_django_tasks(server: str, tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path)
    log = tmp_path / "server.log"
    with started(SERVERS[server](port), port=port, log=log, cwd=SITE, env=env) as running:
        with httpx.Client(base_url=running.url, timeout=10) as client:
            ids = _enqueue_all(client)
            order = list(ids)

            def all_finished() -> bool:
                client.get("/")  # a page view: due tasks run after its response
                got = _results(env, [ids[name] for name in order])
                return all(r.get("status") != "READY" for n, r in zip(order, got, strict=True)
                           if n not in ("later", "rollback"))  # fmt: skip

            wait_for(all_finished, 30, "page views to run the tasks")
        found = dict(zip(order, _results(env, list(ids.values())), strict=True))
        _check(found, ids)
        # They ran in the server's own processes (gunicorn's workers), not elsewhere.
        server_pids = {running.process.pid} | {
            p.pid for p in psutil.Process(running.process.pid).children(recursive=True)
        }
        pids = {int(found[n]["worker_ids"][0].rsplit(":", 1)[1]) for n in ("add", "async")}
        assert pids <= server_pids, (pids, server_pids)


def test_reqrunner_work_drains_the_same_project(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, run_rate="0")  # page views run nothing here
    log = tmp_path / "server.log"
    with started(SERVERS["gunicorn"](port), port=port, log=log, cwd=SITE, env=env) as running:
        with httpx.Client(base_url=running.url, timeout=10) as client:
            ids = _enqueue_all(client)
            for _ in range(3):
                client.get("/")
        waiting = _results(env, [ids["add"]])[0]
        assert waiting["status"] == "READY"  # nobody ran it
        # --app takes the settings module: its TASKS backend names the queue.
        worker = subprocess.run(
            [str(BIN / "reqrunner"), "--app", "djsite.settings", "work", "--max-jobs", "5"],
            env={
                **_clean_environ(),
                **{k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"},
            },
            cwd=SITE,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert worker.returncode == 0, worker.stdout + worker.stderr
    found = dict(zip(ids, _results(env, list(ids.values())), strict=True))
    _check(found, ids)
    listed = subprocess.run(
        [str(BIN / "reqrunner"), "list", "--state", "failed"],
        env={**_clean_environ(), **env},
        cwd=SITE,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # DJANGO_SETTINGS_MODULE alone finds the queue; the CLI names the task as Django does.
    assert listed.returncode == 0, listed.stderr
    assert "djsite.tasks.fail" in listed.stdout
