"""What a fresh interpreter pays to use a SQLite queue: the start of every CGI hit, cron run and
spawned worker.

Each sample is one new ``python -c`` process that imports reqrunner, opens a queue on an
existing SQLite file (tables made, nothing to create), registers a job and does one thing:
``stats()``, one ``dispatch`` or one ``run()``. Printed per case: the median and range over the
rounds of its wall time minus a bare ``python -c pass`` measured in the same round. This
checkout ("after") runs alternating with another revision ("before", ``--against``, default
``main``, exported with ``git archive``), so both see the same load.

    python bench/startup.py [--rounds 15] [--against main] [--quick]

``--quick``: 2 rounds (what CI runs to keep the bench alive).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "stats": "q.stats()",
    "dispatch": "q.dispatch('bench.noop')",
    "run": "q.run()",
}
# The job is registered, so that run() runs what the dispatch samples left (one a round each).
CODE = """
import reqrunner
q = reqrunner.JobQueue({url!r})
@q.job(name="bench.noop")
def noop() -> None:
    pass
{call}
"""


def export(ref: str, into: Path) -> Path:
    """The ``reqrunner`` package of revision ``ref`` of this repository, unpacked in ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "reqrunner"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def seconds(code: str, source: Path, cwd: Path) -> float:
    """Wall time of one fresh interpreter running ``code`` with reqrunner from ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    env.pop("REQRUNNER_DATABASE_URL", None)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=cwd)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--against", default="main", help="the revision to compare with")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sources = {"before": export(args.against, work / "before"), "after": ROOT}
        # A file per revision, its tables made by that revision before the first sample, as on
        # a site that has run: on a shared file, revisions of different schemas would each
        # bring it up to date for themselves in turn.
        urls = {name: f"sqlite:///{work / f'{name}.sqlite3'}" for name in sources}
        for name, source in sources.items():
            seconds(CODE.format(url=urls[name], call="q.stats()"), source, work)
        bare: list[float] = []
        extra: dict[tuple[str, str], list[float]] = {}
        for i in range(rounds):
            base = seconds("pass", ROOT, work)
            bare.append(base)
            # Alternating which revision goes first, so neither always follows the other.
            order = list(sources.items()) if i % 2 == 0 else list(sources.items())[::-1]
            for case, call in CASES.items():
                for name, source in order:
                    code = CODE.format(url=urls[name], call=call)
                    extra.setdefault((case, name), []).append(seconds(code, source, work) - base)
        print(f"python -c pass: median {statistics.median(bare) * 1000:.0f} ms over {rounds}")
        print(f"over a bare interpreter, ms (median [min-max] of {rounds} fresh processes):")
        for case in CASES:
            row = [f"  {case:9}"]
            for name in sources:
                ms = [s * 1000 for s in extra[(case, name)]]
                row.append(
                    f"{name} {statistics.median(ms):5.0f} [{min(ms):.0f}-{max(ms):.0f}]".ljust(22)
                )
            ratio = statistics.median(extra[(case, "after")]) / statistics.median(
                extra[(case, "before")]
            )
            print(*row, f"after/before {ratio:.2f}")
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
