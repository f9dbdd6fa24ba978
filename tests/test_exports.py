"""The public surface: ``__all__`` is complete, sorted and importable."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import reqrunner


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert reqrunner.__all__ == sorted(reqrunner.__all__)
    for name in reqrunner.__all__:
        assert getattr(reqrunner, name) is not None, name


def test_every_public_name_is_exported() -> None:
    ours = {
        name
        for name in dir(reqrunner)
        if not name.startswith("_")
        and getattr(getattr(reqrunner, name), "__module__", "").startswith("reqrunner")
    }
    assert ours <= set(reqrunner.__all__)


def test_middleware_names_load_lazily() -> None:
    """A worker process that only runs jobs does not import the web side."""
    code = (
        "import sys, reqrunner; "
        "assert 'reqrunner.web.asgi' not in sys.modules and 'httpx' not in sys.modules; "
        "reqrunner.ASGIMiddleware; assert 'reqrunner.web.asgi' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


WEB_STACK = ("httpx", "anyio", "starlette", "rich", "reqrunner.web")


def _imported_web_stack(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; the web-stack modules it left imported."""
    probe = (
        f"{code}\n"
        "import sys\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {WEB_STACK!r} "
        f"or m.startswith('reqrunner.web')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return list(ast.literal_eval(done.stdout.strip().splitlines()[-1]))


def test_a_process_that_only_dispatches_and_runs_jobs_imports_no_web_stack(
    tmp_path: Path,
) -> None:
    code = (
        "import reqrunner\n"
        f"queue = reqrunner.JobQueue({f'sqlite:///{tmp_path}/jobs.sqlite3'!r})\n"
        "@queue.job\n"
        "def add(a: int, b: int) -> int:\n"
        "    return a + b\n"
        "add.dispatch(1, 2)\n"
        "add.dispatch_many([[3, 4]])\n"
        "assert queue.run().succeeded == 2\n"
    )
    assert _imported_web_stack(code) == []


def test_the_cli_worker_imports_no_web_stack() -> None:
    assert _imported_web_stack("import reqrunner.cli.worker") == []
