"""A data directory the site cannot write: said clearly, once a minute, never a 500 page."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import reqrunner
from reqrunner.errors import StoreError

from .conftest import inner_wsgi


@pytest.fixture
def frozen(tmp_path: Path) -> Iterator[Path]:
    """A directory holding a job database, made immutable (even root cannot write there)."""
    folder = tmp_path / "data"
    folder.mkdir()
    queue = reqrunner.JobQueue(f"sqlite:///{folder}/jobs.sqlite3")
    queue.dispatch("some.job")
    queue.close()
    chattr = shutil.which("chattr")
    assert chattr is not None, "chattr (e2fsprogs) is needed to make a directory read-only"
    subprocess.run([chattr, "+i", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_read_only_directory_is_named_and_said_once(
    frozen: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = reqrunner.JobQueue(f"sqlite:///{frozen}/jobs.sqlite3")
    with pytest.raises(StoreError, match=f"the directory {frozen} is not writable"):
        queue.dispatch("another.job")

    app = reqrunner.WSGIMiddleware(inner_wsgi, queue, run_rate=1.0, mode="sync", secret="s")
    statuses = set()
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
        for _ in range(8):  # over two seconds: past the due cache, so each second asks again
            statuses.add(client.get("/", headers={"accept": "text/html"}).status_code)
            statuses.add(client.post("/_reqrunner/run", data={"token": "x"}).status_code)
            time.sleep(0.3)
    assert statuses <= {200, 403, 503}
    assert 200 in statuses
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"
    warnings = [r.getMessage() for r in caplog.records if "could not check" in r.getMessage()]
    assert len(warnings) <= 1
    assert all("not writable" in w for w in warnings)
    queue.close()
