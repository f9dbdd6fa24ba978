from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _embedded_job_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo keeps its jobs in REQRUNNER_DATABASE_URL when set; these tests count jobs and
    # need the fresh SQLite store under each test's --data directory instead.
    monkeypatch.delenv("REQRUNNER_DATABASE_URL", raising=False)
