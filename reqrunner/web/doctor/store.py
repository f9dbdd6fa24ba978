"""The job store's checks: reachable, writable (its directory too, for a file), WAL and the file
system under it, the schema version, size and growth, and how long a write waits for the lock.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import ReqRunnerError
from ...store.facts import StorageFacts
from .report import Check, Status
from .words import size

if TYPE_CHECKING:
    from ...queue import JobQueue

__all__ = ["NETWORK_FILE_SYSTEMS", "store_checks"]

AREA = "Job store"
SIZE_RECORD = "reqrunner.doctor.size"
"""Where doctor keeps the size it last saw, to tell growth."""
PROBE_RECORD = "reqrunner.doctor.probe"
SLOW_LOCK = 1.0
"""Seconds: a write that waits this long for the lock means writers queue behind a long one."""
NETWORK_FILE_SYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "fuse.sshfs",
        "fuse.glusterfs",
        "fuse.s3fs",
        "fuse.rclone",
        "davfs",
        "fuse.davfs2",
    }
)
"""File systems whose locks SQLite cannot trust, and where WAL's shared memory does not work."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _file_system(path: Path) -> str | None:
    """The type of the file system ``path`` is on, from ``/proc/mounts`` (Linux)."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    target = str(path.resolve())
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[2]
    return kind


def _directory_writable(directory: Path) -> str | None:
    """``None`` if a file can be made in ``directory`` (and removed), else why not. Tried for
    real: permission bits say nothing to root, nor about a read-only or immutable mount."""
    probe = directory / f".reqrunner-doctor-{uuid.uuid4().hex}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(fd)
    probe.unlink()
    return None


def _file_checks(path: Path) -> list[Check]:
    checks = []
    directory = path.parent
    why = _directory_writable(directory)
    if why is None:
        checks.append(
            Check(
                id="store.directory",
                area=AREA,
                title="SQLite directory writable",
                status="ok",
                found=f"{directory} takes new files (SQLite keeps its -wal and -shm files there).",
                data={"directory": str(directory)},
            )
        )
    else:
        checks.append(
            Check(
                id="store.directory",
                area=AREA,
                title="SQLite directory writable",
                status="fail",
                found=f"{directory} does not take new files ({why}). SQLite must create its "
                "-wal, -shm or -journal file next to the database, so every write fails.",
                advice="Give the site's user write access to that directory (not only to the "
                "file), or point the queue at a SQLite file in a writable directory, e.g. "
                "JobQueue('sqlite:////home/you/data/reqrunner.sqlite3').",
                data={"directory": str(directory), "error": why},
            )
        )
    kind = _file_system(directory)
    if kind in NETWORK_FILE_SYSTEMS:
        checks.append(
            Check(
                id="store.filesystem",
                area=AREA,
                title="File system",
                status="warn",
                found=f"The database is on a network file system ({kind}): SQLite's locks are not "
                "reliable there and WAL mode does not work across machines.",
                advice="Move the SQLite file to a local disk, or use PostgreSQL or MySQL "
                "(pip install 'reqrunner[postgres]' or 'reqrunner[mysql]').",
                data={"type": kind},
            )
        )
    elif kind is not None:
        checks.append(
            Check(
                id="store.filesystem",
                area=AREA,
                title="File system",
                status="ok",
                found=f"A local file system ({kind}).",
                data={"type": kind},
            )
        )
    return checks


def _growth(queue: JobQueue, facts: StorageFacts) -> Check:
    now = time.time()
    found = f"{size(facts.size)} in the database."
    data: dict[str, object] = {"bytes": facts.size}
    try:
        before = json.loads(queue.get_meta(SIZE_RECORD) or "null")
    except ValueError:
        before = None
    if isinstance(before, dict) and facts.size is not None:
        days = (now - float(before.get("at", now))) / 86400
        grown = facts.size - int(before.get("bytes", facts.size))
        if days >= 1 / 24:
            found += (
                f" {size(abs(grown))} {'more' if grown >= 0 else 'less'} than {days:.1f} days ago."
            )
            data["grown_per_day"] = grown / days
    queue.set_meta(SIZE_RECORD, json.dumps({"at": now, "bytes": facts.size}))
    stats = queue.stats()
    status: Status = "ok"
    advice = ""
    if stats.failed > 10_000 or stats.done > 100_000:
        status = "warn"
        advice = "Prune old jobs: reqrunner prune (failed after 180 days, done after 7 by default)."
    found += f" {stats.total} job(s) stored ({stats.failed} failed, {stats.done} done kept)."
    data.update(jobs=stats.total, failed=stats.failed, done=stats.done)
    return Check(
        id="store.size",
        area=AREA,
        title="Size and growth",
        status=status,
        found=found,
        advice=advice,
        data=data,
    )


def store_checks(queue: JobQueue) -> list[Check]:
    """Every check of ``queue``'s job store (a few reads and small writes)."""
    checks: list[Check] = []
    path = queue.dialect.local_file()
    if path is not None:
        checks.extend(_file_checks(Path(path)))
    try:
        facts = queue.storage_facts()
    except ReqRunnerError as exc:
        checks.append(
            Check(
                id="store.reachable",
                area=AREA,
                title="Reachable",
                status="fail",
                found=f"The job database cannot be used: {_first_line(exc)}",
                advice="Check the database URL (JobQueue(...) or REQRUNNER_DATABASE_URL), that "
                "the server is up and the user may connect; for SQLite, that the file and its "
                "directory are writable by the site's user.",
                data={"url": queue.url, "error": _first_line(exc)},
            )
        )
        return checks
    checks.append(
        Check(
            id="store.reachable",
            area=AREA,
            title="Reachable",
            status="ok",
            found=f"{queue.url} answers.",
            data={"url": queue.url},
        )
    )
    try:
        queue.set_meta(PROBE_RECORD, str(time.time()))
        checks.append(
            Check(
                id="store.writable",
                area=AREA,
                title="Writable",
                status="ok",
                found="A test write was stored.",
            )
        )
    except ReqRunnerError as exc:
        checks.append(
            Check(
                id="store.writable",
                area=AREA,
                title="Writable",
                status="fail",
                found=f"A test write failed: {_first_line(exc)}",
                advice="Give the site's database user (or, for SQLite, the site's system user) "
                "the right to write; jobs cannot be dispatched or claimed until then.",
                data={"error": _first_line(exc)},
            )
        )
        return checks
    if facts.file is not None:
        wal = facts.journal_mode == "wal"
        checks.append(
            Check(
                id="store.wal",
                area=AREA,
                title="WAL mode",
                status="ok" if wal else "warn",
                found="SQLite runs in WAL mode: readers never wait for the writer."
                if wal
                else f"SQLite runs in {facts.journal_mode} mode, not WAL: page views and runs "
                "wait for each other's writes.",
                advice="" if wal else "Keep the database on a local disk where WAL works.",
                data={"journal_mode": facts.journal_mode},
            )
        )
    version_ok = facts.schema_version == facts.supported_version
    checks.append(
        Check(
            id="store.schema",
            area=AREA,
            title="Schema version",
            status="ok" if version_ok else "warn",
            found=f"Version {facts.schema_version} (this reqrunner writes "
            f"{facts.supported_version}).",
            advice="" if version_ok else "Run the same reqrunner version on every process.",
            data={"version": facts.schema_version, "supported": facts.supported_version},
        )
    )
    checks.append(_growth(queue, facts))
    slow = facts.lock_wait >= SLOW_LOCK
    checks.append(
        Check(
            id="store.lock_wait",
            area=AREA,
            title="Lock waits",
            status="warn" if slow else "ok",
            found=f"A write waited {facts.lock_wait * 1000:.0f} ms for the database's lock"
            + (": another process holds it for long." if slow else "."),
            advice="Look for a long transaction (a backup, an admin tool) holding the lock."
            if slow
            else "",
            data={"seconds": facts.lock_wait},
        )
    )
    return checks
