"""Running the console script in a fresh interpreter and reading what it printed last."""

from __future__ import annotations

import ast
import subprocess
import sys


def probe(code: str, args: list[str], env: dict[str, str]) -> object:
    """Run ``code`` (which calls the console script's ``main()`` with ``args`` and prints a
    Python literal last) in a fresh interpreter; that literal, once it has exited 0."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])
