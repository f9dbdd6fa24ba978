"""The README's Quick start, taken out of the page as written and served by real servers.

Its code blocks (each names its file in a first-line comment) are written into a fresh
directory; the ASGI site runs on uvicorn and the WSGI site on gunicorn, with the commands the
README gives. Page views must run the job a signup dispatched, and the Queue Manager must let
the README's user and password in on both.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

import reqrunner
from reqrunner.triggers import last_runs
from tests.live import BIN, ROOT, free_port, started, wait_for

README = ROOT / "README.md"
_BLOCK = re.compile(r"```python\n# (?P<path>[\w/]+\.py)\n(?P<code>.*?)```", re.DOTALL)


def quick_start() -> dict[str, str]:
    """The Quick start's files by path, as the README writes them."""
    text = README.read_text()
    section = text[text.index("## Quick start") :]
    section = section[: section.index("\n## ", 1)]
    files = {m["path"]: f"# {m['path']}\n{m['code']}" for m in _BLOCK.finditer(section)}
    assert set(files) >= {"mysite/jobs.py", "mysite/asgi.py", "mysite/wsgi.py"}, files
    return files


def _credentials(files: dict[str, str]) -> tuple[str, str]:
    found = re.search(r'BasicAuth\("([^"]+)", "([^"]+)"\)', files["mysite/wsgi.py"])
    assert found
    return found[1], found[2]


@pytest.mark.parametrize(
    ("server", "target"), [("uvicorn", "mysite.asgi:app"), ("gunicorn", "mysite.wsgi:application")]
)
def test_the_quick_start_runs_as_written(tmp_path: Path, server: str, target: str) -> None:
    files = quick_start()
    for path, code in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(code)
    port = free_port()
    command = (
        [str(BIN / "uvicorn"), target, "--port", str(port)]
        if server == "uvicorn"
        else [str(BIN / "gunicorn"), target, "--bind", f"127.0.0.1:{port}"]
    )
    queue = reqrunner.JobQueue(f"sqlite:///{tmp_path}/reqrunner.sqlite3")
    user, password = _credentials(files)
    with (
        started(command, port=port, log=tmp_path / "server.log", cwd=tmp_path) as site,
        httpx.Client(base_url=site.url, timeout=10) as client,
    ):
        signup = client.post("/signup")
        assert signup.status_code == 200 and "Welcome!" in signup.text
        found = re.search(r"\(job (\d+)\)", signup.text)
        assert found
        job_id = int(found[1])
        first = queue.get(job_id)
        # run_rate=0.1: about one page view in ten runs the due jobs after its response, the
        # signup's own among them, and a job that ran is deleted (the queue keeps no finished
        # jobs): gone already, it ran after the signup, and that run is on record.
        if first is None:
            assert sum(run.ran for run in last_runs(queue).values()) >= 1
        else:
            assert first.name == "mysite.jobs.send_welcome"

        def ran() -> bool:
            client.get("/signup")
            return queue.get(job_id) is None

        wait_for(ran, 60, "page views to run the dispatched jobs")
        assert client.get("/_reqrunner/admin").status_code == 401
        admin = client.get("/_reqrunner/admin", auth=(user, password))
        assert admin.status_code == 200 and "Queue Manager" in admin.text
    queue.close()
