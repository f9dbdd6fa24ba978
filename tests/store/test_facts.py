"""What the job database says about itself for doctor, on every database."""

from __future__ import annotations

from pathlib import Path

import reqrunner
from tests.conftest import kind_of


def test_storage_facts(queue: reqrunner.JobQueue, db_url: str) -> None:
    queue.dispatch("elsewhere.defined", "x")
    facts = queue.storage_facts()
    assert facts.schema_version == facts.supported_version == 1
    assert facts.size is not None and facts.size > 0
    assert 0 <= facts.lock_wait < 1
    if kind_of(db_url) == "sqlite":
        assert facts.file is not None and Path(facts.file).is_file()
        assert facts.journal_mode == "wal"
    else:
        assert facts.file is None and facts.journal_mode is None
