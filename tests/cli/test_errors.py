"""Bad input gets one clear line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess

import pytest

from reqrunner.cli.main import main
from tests.cli.conftest import CLI


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "error" in message
    for word in words:
        assert word in message, message


def test_unknown_verb(sqlite_cli_url: str):
    one_line_error(CLI(sqlite_cli_url)("frobnicate"), 2, "invalid choice: 'frobnicate'", "run")


def test_bad_max_memory(sqlite_cli_url: str):
    result = CLI(sqlite_cli_url)("run", "--max-memory", "lots")
    one_line_error(result, 2, "--max-memory", "percentage", "128M")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["run", "--max-memory", "0"], ["--max-memory", "above 0"]),
        (["work", "--max-memory", "150"], ["--max-memory", "at most 100"]),
        (["run", "--max-memory", "12Q"], ["--max-memory", "128M"]),
        (["work", "--sleep", "-1"], ["--sleep", "above 0"]),
        (["run", "--max-jobs", "0"], ["--max-jobs", "at least 1"]),
        (["prune", "--failed-older-than", "six months"], ["180d"]),
        (["show", "seven"], ["invalid int value: 'seven'"]),
    ],
)
def test_bad_option_values(capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]):
    # Parsing fails before any database or app is touched: in-process is the same code path.
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"reqrunner {argv[0]}: error: ")
    for word in words:
        assert word in message, message


def test_unknown_job_id(cli_url: str):
    cli = CLI(cli_url)
    one_line_error(cli("show", "999999"), 1, "job 999999 not found")
    for verb in ("retry", "delete", "release"):
        result = cli(verb, "999998", "999999")
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            f"reqrunner {verb}: error: job {i} not found (it may have finished and been deleted)"
            for i in (999998, 999999)
        ]


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("postgresql://postgres@127.0.0.1:1/test", "127.0.0.1"),
        ("mysql://root@127.0.0.1:1/test", "127.0.0.1"),
        ("sqlite:////nonexistent-dir/jobs.sqlite3", "nonexistent-dir"),
    ],
)
def test_unreachable_database(sqlite_cli_url: str, url: str, where: str):
    one_line_error(CLI(sqlite_cli_url)("--db", url, "stats", app=False), 1, where)


def test_work_on_an_unreachable_database_exits(sqlite_cli_url: str):
    result = CLI("postgresql://postgres@127.0.0.1:1/test")("work", timeout=30)
    one_line_error(result, 1, "127.0.0.1")


@pytest.mark.parametrize(
    ("app", "words"),
    [
        ("tests.cli.app_for_cli", ["MODULE:ATTR", "e.g."]),
        ("no_such_module_here:queue", ["no module named 'no_such_module_here'"]),
        ("tests.cli.app_for_cli:stamp", ["is a function, not a reqrunner.JobQueue"]),
    ],
)
def test_wrong_app(sqlite_cli_url: str, app: str, words: list[str]):
    result = CLI(sqlite_cli_url)("--app", app, "stats", app=False)
    one_line_error(result, 2, "--app", *words)


def test_missing_app_for_run(sqlite_cli_url: str):
    one_line_error(CLI(sqlite_cli_url)("run", app=False), 2, "--app", "REQRUNNER_APP")


def test_app_from_the_environment(sqlite_cli_url: str):
    result = CLI(sqlite_cli_url)("run", app=False, REQRUNNER_APP="tests.cli.app_for_cli:queue")
    assert result.returncode == 0, result.stderr
    assert "Ran 0 job(s)" in result.stdout
