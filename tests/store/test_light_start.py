"""Opening a queue loads the SQLAlchemy dialect of its own database only, and no web stack."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

PROBE = """
import sys
import reqrunner
queue = reqrunner.JobQueue(sys.argv[1])
queue.stats()
queue.close()
dialects = {{".".join(m.split(".")[:3]) for m in sys.modules if m.startswith("sqlalchemy.dia")}}
web = {{m for m in sys.modules if m.split(".")[0] in {web!r}}}
print(sorted({{d for d in dialects if d.count(".") == 2 and "._" not in d}} | web))
"""
WEB = ("httpx", "anyio", "starlette", "rich")


@pytest.mark.parametrize(
    ("kind", "loaded"),
    [
        ("sqlite", ["sqlalchemy.dialects.sqlite"]),
        ("postgresql", ["sqlalchemy.dialects.postgresql"]),
        ("mysql", ["sqlalchemy.dialects.mysql"]),
    ],
)
def test_a_queue_loads_only_its_own_database_dialect(
    request: pytest.FixtureRequest, tmp_path: object, kind: str, loaded: list[str]
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/jobs.sqlite3"
    else:
        url = request.getfixturevalue(f"{kind}_url")
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(web=WEB), url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert ast.literal_eval(done.stdout.strip().splitlines()[-1]) == loaded
