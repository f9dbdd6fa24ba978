"""``run``, ``list``, ``failed``, ``show``, ``stats``, ``retry``, ``delete``, ``release``, ``prune``
through the real console script, on SQLite and PostgreSQL, checked against the store."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import reqrunner
from reqrunner.cli.main import main
from tests.cli.app_for_cli import build_queue
from tests.cli.conftest import APP, CLI, ROOT, SCRIPT, cli_env


def test_run_runs_due_jobs_and_reports(cli: CLI, app_queue: reqrunner.JobQueue, tmp_path: Path):
    out = tmp_path / "stamps.txt"
    for tag in ("a", "b", "c"):
        app_queue.jobs["cli.stamp"].dispatch(str(out), tag)
    app_queue.jobs["cli.fails"].dispatch("boom")
    later = app_queue.jobs["cli.stamp"].using(delay=3600).dispatch(str(out), "later")

    report = cli.json("run")

    assert report["ran"] == 4
    assert report["succeeded"] == 3
    assert report["failed"] == 1
    assert report["stopped_by"] == "empty"
    assert sorted(line.split()[1] for line in out.read_text().splitlines()) == ["a", "b", "c"]
    stats = app_queue.stats()
    assert (stats.failed, stats.done, stats.delayed, stats.waiting) == (1, 3, 1, 0)
    assert app_queue.get(later).state is reqrunner.JobState.WAITING  # type: ignore[union-attr]


def test_run_once_and_queue_filter(cli: CLI, app_queue: reqrunner.JobQueue, tmp_path: Path):
    out = tmp_path / "stamps.txt"
    stamp = app_queue.jobs["cli.stamp"]
    stamp.using(queue="mail").dispatch(str(out), "mail")
    stamp.dispatch(str(out), "d1")
    stamp.dispatch(str(out), "d2")

    assert cli.json("run", "--once", "--queue", "default")["ran"] == 1
    assert app_queue.stats().waiting == 2
    assert cli.json("run", "--queue", "mail")["ran"] == 1
    tags = [line.split()[1] for line in out.read_text().splitlines()]
    assert tags[0] in ("d1", "d2")
    assert tags[1] == "mail"


def test_python_dash_m_is_the_same_script(sqlite_cli_url: str, tmp_path: Path):
    q = build_queue(sqlite_cli_url)
    q.jobs["cli.stamp"].dispatch(str(tmp_path / "s.txt"))
    result = subprocess.run(
        [sys.executable, "-m", "reqrunner", "--app", APP, "run"],
        env=cli_env(sqlite_cli_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Ran 1 job(s)" in result.stdout
    assert (tmp_path / "s.txt").exists()
    q.close()


def test_list_and_failed_json_match_the_store(
    cli: CLI, app_queue: reqrunner.JobQueue, tmp_path: Path
):
    stamp = app_queue.jobs["cli.stamp"]
    stamp.dispatch(str(tmp_path / "x"), "now")
    stamp.using(delay=600, queue="mail", priority=5).dispatch(str(tmp_path / "y"))
    app_queue.jobs["cli.fails"].dispatch("kaput")
    app_queue.run(max_jobs=None, queues=["default"])  # stamp done, fails failed
    stamp.dispatch(str(tmp_path / "z"), "waiting")

    listed = cli.json("list")
    assert [j["id"] for j in listed] == [j.id for j in app_queue.list_jobs()]
    for row, job in zip(listed, app_queue.list_jobs(), strict=True):
        assert (row["name"], row["state"], row["queue"], row["args"], row["attempts"]) == (
            job.name,
            job.state.value,
            job.queue,
            list(job.args),
            job.attempts,
        )
        assert row["delayed"] == job.delayed

    delayed = cli.json("list", "--state", "delayed")
    assert [(j["queue"], j["priority"], j["delayed"]) for j in delayed] == [("mail", 5, True)]
    assert [j["id"] for j in cli.json("list", "--queue", "default", "--limit", "1")] == [
        app_queue.list_jobs(queue="default")[0].id
    ]

    failed = cli.json("failed")
    assert [j["id"] for j in failed] == [j.id for j in app_queue.list_jobs(state="failed")]
    assert failed[0]["error"]["type"] == "RuntimeError"
    assert failed[0]["error"]["message"] == "kaput"


def test_show_gives_traceback_progress_and_history(cli: CLI, app_queue: reqrunner.JobQueue):
    job_id = app_queue.jobs["cli.fails"].dispatch("with a traceback")
    app_queue.run()
    stored = app_queue.get(job_id)
    assert stored is not None and stored.error is not None

    shown = cli.json("show", str(job_id))
    assert shown["id"] == job_id
    assert shown["state"] == "failed"
    assert shown["progress"] == stored.progress == 0.5
    assert shown["label"] == "half way"
    assert shown["error"]["traceback"] == stored.error.traceback
    assert "raise RuntimeError(message)" in shown["error"]["traceback"]
    assert shown["history"] == [dict(h) for h in stored.history]

    text = cli("show", str(job_id))
    assert text.returncode == 0
    assert "RuntimeError: with a traceback" in text.stdout
    assert "50% half way" in text.stdout
    assert "Traceback (most recent call last)" in text.stdout


def test_stats_json_matches_the_store(cli: CLI, app_queue: reqrunner.JobQueue, tmp_path: Path):
    stamp = app_queue.jobs["cli.stamp"]
    stamp.dispatch(str(tmp_path / "a"))
    app_queue.run()
    stamp.dispatch(str(tmp_path / "b"))
    stamp.using(delay=600).dispatch(str(tmp_path / "c"))
    app_queue.jobs["cli.fails"].using(queue="other").dispatch("x")
    app_queue.run(queues=["other"])

    stats = cli.json("stats")
    expected = app_queue.stats()
    assert (
        {k: stats[k] for k in ("waiting", "delayed", "reserved", "failed", "done")}
        == {
            "waiting": expected.waiting,
            "delayed": expected.delayed,
            "reserved": expected.reserved,
            "failed": expected.failed,
            "done": expected.done,
        }
        == {"waiting": 1, "delayed": 1, "reserved": 0, "failed": 1, "done": 1}
    )
    assert stats["oldest_due_age"] >= 0
    assert stats["workers"] == []

    text = cli("stats").stdout
    assert "delayed" in text and "workers seen" in text


def test_plain_text_list_in_a_pipe(cli: CLI, app_queue: reqrunner.JobQueue, tmp_path: Path):
    ids = [app_queue.jobs["cli.stamp"].dispatch(str(tmp_path / "a"), str(i)) for i in range(3)]
    result = cli("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "STATE", "QUEUE", "NAME"]
    assert [line.split()[:4] for line in lines[1:]] == [
        [str(i), "waiting", "default", "cli.stamp"] for i in ids
    ]
    assert "\x1b[" not in result.stdout  # no terminal colours in a pipe


def test_retry_delete_and_prune(cli: CLI, app_queue: reqrunner.JobQueue, tmp_path: Path):
    fails = app_queue.jobs["cli.fails"]
    first, second, third, fourth = (fails.dispatch(str(i)) for i in range(4))
    app_queue.run()
    assert app_queue.stats().failed == 4

    assert cli("retry", str(first), str(second)).returncode == 0
    assert app_queue.get(first).state is reqrunner.JobState.WAITING  # type: ignore[union-attr]
    assert app_queue.get(second).attempts == 0  # type: ignore[union-attr]
    assert cli("delete", str(first)).returncode == 0
    assert app_queue.get(first) is None
    assert cli("delete", "--all-failed").returncode == 0
    assert [app_queue.get(i) for i in (third, fourth)] == [None, None]
    app_queue.run()  # second fails again
    assert cli("retry", "--all").returncode == 0
    assert app_queue.get(second).state is reqrunner.JobState.WAITING  # type: ignore[union-attr]
    app_queue.run()
    done = app_queue.jobs["cli.stamp"].dispatch(str(tmp_path / "a"))
    app_queue.run()

    result = cli("prune", "--failed-older-than", "1d", "--done-older-than", "0s")
    assert result.returncode == 0, result.stderr
    assert "Pruned 1 job(s)" in result.stdout
    assert app_queue.get(done) is None
    assert app_queue.get(second).state is reqrunner.JobState.FAILED  # type: ignore[union-attr]


def test_release_frees_a_stuck_reservation(cli: CLI, cli_url: str, tmp_path: Path):
    # A runner in this process holds the job (blocked inside it) while the CLI releases it.
    q = reqrunner.JobQueue(cli_url)
    entered, leave = threading.Event(), threading.Event()

    @q.job(name="cli.blocks")
    def blocks() -> None:
        entered.set()
        leave.wait(30)

    job_id = blocks.dispatch()
    runner = threading.Thread(target=q.run)
    runner.start()
    try:
        assert entered.wait(10)
        assert q.get(job_id).state is reqrunner.JobState.RESERVED  # type: ignore[union-attr]
        # No app: --db alone is enough for the management verbs (the env's database is unused).
        elsewhere = CLI(f"sqlite:///{tmp_path}/unused.sqlite3")
        result = elsewhere("--db", cli_url, "release", str(job_id), app=False, timeout=30)
        assert result.returncode == 0, result.stderr
        assert q.get(job_id).state is reqrunner.JobState.WAITING  # type: ignore[union-attr]
        again = cli("release", str(job_id), app=False, timeout=30)
        assert again.returncode == 1
        assert not (tmp_path / "unused.sqlite3").exists()
        assert again.stderr == (
            f"reqrunner release: error: job {job_id} is waiting, it cannot be released\n"
        )
    finally:
        leave.set()
        runner.join()
        q.close()


@pytest.mark.parametrize("attr", ["queue", "pinned"])
def test_db_overrides_the_apps_database(pg_cli_url: str, tmp_path: Path, attr: str):
    cli_url = pg_cli_url
    q = build_queue(cli_url)
    q.jobs["cli.stamp"].dispatch(str(tmp_path / "ran.txt"))
    other = tmp_path / "other.sqlite3"
    # `queue` would use REQRUNNER_DATABASE_URL, `pinned` the URL written in its code.
    cli = CLI(f"sqlite:///{other}")
    result = cli(
        "--app", f"tests.cli.app_for_cli:{attr}", "--db", cli_url, "run", "--json",
        app=False, CLI_PINNED_URL=f"sqlite:///{other}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["succeeded"] == 1
    assert (tmp_path / "ran.txt").exists()
    assert not other.exists()
    q.close()


def test_every_verb_has_help_with_examples(capsys: pytest.CaptureFixture[str]):
    # In-process: parsing needs no database, and thirteen interpreter start-ups would cost more
    # than all the other tests here.
    verbs = ["run", "work", "restart", "list", "failed", "show", "stats", "retry", "delete",
             "release", "prune", "ping"]  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    overview = capsys.readouterr().out
    assert all(verb in overview for verb in verbs)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"reqrunner {reqrunner.__version__}\n"
    for verb in verbs:
        with pytest.raises(SystemExit) as exited:
            main([verb, "--help"])
        assert exited.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: reqrunner {verb}")
        assert "example" in text, verb


def test_a_terminal_gets_a_progress_bar_and_tables(sqlite_cli_url: str, tmp_path: Path):
    q = build_queue(sqlite_cli_url)
    for _ in range(2):
        q.jobs["cli.sleeps"].dispatch(str(tmp_path / "x"), 0.4)
    controller, terminal = pty.openpty()
    command = [*SCRIPT, "--app", APP, "run", ";", *SCRIPT, "--app", APP, "list"]
    shell = " ".join(shlex.quote(part) if part != ";" else part for part in command)
    proc = subprocess.Popen(
        ["sh", "-c", shell],
        env=cli_env(sqlite_cli_url, COLUMNS="120", TERM="xterm"),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    seen = b""
    with contextlib.suppress(OSError):  # EIO once every writer has closed the terminal
        while chunk := os.read(controller, 65536):
            seen += chunk
    os.close(controller)
    assert proc.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode("utf-8", "replace"))
    assert "running" in text and "/2" in text  # the bar: jobs done out of due
    assert "cli.sleeps started" in text  # its caption: the current job
    assert "Ran 2 job(s)" in text
    assert "┃ ID" in text  # list: a rich table
    q.close()
