"""The console script says things right: a cut list says how many more there are, a pipe
closed early ends every verb quietly, and a bad --db is blamed on the URL."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.cli.app_for_cli import build_queue
from tests.cli.conftest import APP, CLI, ROOT, SCRIPT, cli_env


def test_list_says_how_many_more_there_are(sqlite_cli_url: str) -> None:
    queue = build_queue(sqlite_cli_url)
    queue.jobs["cli.stamp"].dispatch_many([{"path": "/dev/null"}] * 61)
    queue.close()
    cli = CLI(sqlite_cli_url)
    cut = cli("list")
    assert cut.returncode == 0
    lines = cut.stdout.splitlines()
    assert len(lines) == 1 + 50 + 1  # header, 50 rows, the note
    assert lines[-1] == "50 of 61 jobs shown; --limit 61 shows them all."
    whole = cli("list", "--limit", "70").stdout.splitlines()
    assert len(whole) == 1 + 61 and "shown" not in whole[-1]
    assert "shown" not in cli("list", "--limit", "61").stdout  # exactly all of them
    # JSON stays one document: the list itself.
    assert cli("list", "--json").stdout.lstrip().startswith("[")


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["restart"],
        ["list"],
        ["failed"],
        ["show", "1"],
        ["stats"],
        ["retry", "--all"],
        ["delete", "--all-failed"],
        ["prune"],
        ["doctor"],
        ["list", "--json"],
        ["stats", "--json"],
    ],
)
def test_a_closed_pipe_ends_quietly(sqlite_cli_url: str, argv: list[str]) -> None:
    queue = build_queue(sqlite_cli_url)
    queue.jobs["cli.stamp"].dispatch_many([{"path": "/dev/null"}] * 3)
    queue.close()
    # A pipe whose reader is already gone: the first write fails, as `| head` does once
    # head has its lines.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [*SCRIPT, "--app", APP, *argv],
            env=cli_env(sqlite_cli_url),
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode == 141


def test_a_misspelt_db_url_is_blamed_on_the_url(sqlite_cli_url: str) -> None:
    result = CLI(sqlite_cli_url)("--db", "sqlit:///x", "stats")
    assert result.returncode == 2
    message = result.stderr.strip()
    assert "importing" not in message
    assert message.startswith("reqrunner stats: error: --db 'sqlit:///x': ")
    assert "not 'sqlit'" in message
