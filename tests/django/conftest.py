"""The test project under ``site/``, set up in this process for the in-process tests (Django
is configured once per process: every test here uses the same settings)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SITE = Path(__file__).resolve().parent / "site"
ENV = ("DJSITE_DATA", "DJANGO_SETTINGS_MODULE", "REQRUNNER_DATABASE_URL")


@pytest.fixture(scope="session")
def djsite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Django set up with ``djsite.settings``; the project's reqrunner queue."""
    data = tmp_path_factory.mktemp("djsite")
    # Set for the settings module only: later tests' servers must not inherit them.
    saved = {name: os.environ.get(name) for name in ENV}
    os.environ.update(DJSITE_DATA=str(data), DJANGO_SETTINGS_MODULE="djsite.settings")
    os.environ.pop("REQRUNNER_DATABASE_URL", None)
    sys.path.insert(0, str(SITE))
    try:
        import django  # noqa: PLC0415 (Django is set up only for the tests that ask)

        django.setup()
        from reqrunner.django import get_queue  # noqa: PLC0415

        queue = get_queue()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    yield queue
    queue.close()


@pytest.fixture
def queue(djsite: Any) -> Any:
    """The project's queue, with nothing left from another test."""
    for job in djsite.list_jobs(limit=1000):
        djsite.delete(job.id)
    return djsite
