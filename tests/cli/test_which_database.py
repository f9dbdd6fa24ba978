"""Every verb says which job database it used, and warns when it had to create one."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .conftest import SCRIPT


def _stats(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REQRUNNER_")}
    return subprocess.run(
        [*SCRIPT, "--db", "sqlite:///reqrunner.sqlite3", "stats", "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_relative_database_in_another_directory_is_named_and_new_is_warned(
    tmp_path: Path,
) -> None:
    first = _stats(tmp_path)
    assert first.returncode == 0, first.stderr
    expected = tmp_path / "reqrunner.sqlite3"
    assert f"job database sqlite:///{expected}" in first.stderr
    assert "warning: there was no job database" in first.stderr
    assert first.stdout.lstrip().startswith("{")  # --json output stays JSON

    again = _stats(tmp_path)
    assert f"job database sqlite:///{expected}" in again.stderr
    assert "warning" not in again.stderr
