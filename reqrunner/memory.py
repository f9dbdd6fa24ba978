"""How much memory this process uses, and how much it may use.

The effective limit is the smallest of the cgroup's memory limit (v2 or v1: what a container or
a shared host's account really gets), ``RLIMIT_AS`` and physical memory, read once per process.
"""

from __future__ import annotations

import functools
import os
import resource
from pathlib import Path

import psutil

__all__ = ["effective_limit", "limits_by_source", "rss"]

_CGROUP = Path("/sys/fs/cgroup")


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None  # "max": no limit
    value = int(text)
    # cgroup v1 reports "no limit" as a huge number near 2**63.
    return value if value < 1 << 60 else None


def _cgroup_limits() -> list[int]:
    limits: list[int] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return limits
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        rel = rel.lstrip("/")
        if controllers == "":  # v2 unified hierarchy: check this group and its parents
            group = _CGROUP / rel
            while True:
                found = _read_limit(group / "memory.max")
                if found is not None:
                    limits.append(found)
                if group == _CGROUP:
                    break
                group = group.parent
        elif "memory" in controllers.split(","):
            for base in (_CGROUP / "memory" / rel, _CGROUP / "memory"):
                found = _read_limit(base / "memory.limit_in_bytes")
                if found is not None:
                    limits.append(found)
                    break
    return limits


def limits_by_source() -> dict[str, int]:
    """Every memory limit this process is under, by where it was read: ``"RAM"``,
    ``"cgroup"`` (the tightest of the groups it is in) and ``"RLIMIT_AS"``, where set."""
    found = {"RAM": int(psutil.virtual_memory().total)}
    groups = _cgroup_limits()
    if groups:
        found["cgroup"] = min(groups)
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft not in (resource.RLIM_INFINITY, -1) and soft > 0:
        found["RLIMIT_AS"] = soft
    return found


@functools.lru_cache(maxsize=1)
def effective_limit() -> int:
    """Bytes this process may use before something (kernel, container, host) stops it."""
    return min(limits_by_source().values())


_process: psutil.Process | None = None


def rss() -> int:
    """This process's resident memory in bytes."""
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = psutil.Process()
    return int(_process.memory_info().rss)
