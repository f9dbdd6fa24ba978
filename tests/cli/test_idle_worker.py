"""An idle ``reqrunner work`` on PostgreSQL, whose tables exist, never loads SQLAlchemy: its
connections are reqrunner's own (the store's pool and the listener), and SQLAlchemy's import
was a third of an idle worker's memory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import reqrunner
from tests.cli.probe import probe
from tests.conftest import drop_tables

SITE = """
import reqrunner

queue = reqrunner.JobQueue()

@queue.job(name="idle.noop")
def noop() -> None:
    pass
"""

# The console script's main() in a fresh interpreter, stopped by SIGTERM once it has been idle
# a while (claims that found nothing, then waits on its listener); then whether it had loaded
# SQLAlchemy and how many claims it made.
PROBE = """
import os, signal, sys, threading
from reqrunner.cli.main import main
from reqrunner.store.dialects.postgres import PostgresDialect

claims = []
real = PostgresDialect.claim
def counted(self, *args, **kwargs):
    found = real(self, *args, **kwargs)
    claims.append(len(found))
    return found
PostgresDialect.claim = counted
threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
status = main(sys.argv[1:])
print(["sqlalchemy" in sys.modules, sorted(set(claims))])
sys.exit(status)
"""


def test_an_idle_postgres_worker_loads_no_sqlalchemy(postgresql_url: str, tmp_path: Path) -> None:
    drop_tables(postgresql_url)
    reqrunner.JobQueue(postgresql_url).stats()  # the tables exist before the worker starts
    (tmp_path / "idle_site.py").write_text(SITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REQRUNNER_")}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    env.update(REQRUNNER_DATABASE_URL=postgresql_url)
    found = probe(PROBE, ["--app", "idle_site:queue", "work", "--sleep", "0.2"], env)
    assert found == [False, [0]]
