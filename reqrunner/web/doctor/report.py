"""What ``reqrunner doctor`` and the admin's overview show: checks with a verdict, in words.

A :class:`Check` says what was looked at, what was found and, unless all is well, what to do.
Its status is one of:

- ``ok``: nothing to do;
- ``warn``: jobs still run, but something is slower, blind or locked out (the admin) until fixed;
- ``fail``: this stops jobs from running; ``reqrunner doctor`` exits 1;
- ``unknown``: doctor could not tell from where it ran, and says why.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["STATUSES", "Check", "Report", "Status"]

Status = Literal["ok", "warn", "fail", "unknown"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "fail", "unknown")


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    """One thing doctor looked at."""

    id: str
    """A stable name for scripts, e.g. ``store.writable``."""
    area: str
    """The group it is shown in: ``Job store``, ``Running from page views``, ``Limits``, …"""
    title: str
    status: Status
    found: str
    """What doctor saw, in plain words."""
    advice: str = ""
    """What to do about it (empty when nothing needs doing)."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """The measured values behind ``found`` (bytes, seconds, URLs), for ``--json``."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "id": self.id,
            "area": self.area,
            "title": self.title,
            "status": self.status,
            "found": self.found,
            "advice": self.advice,
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Check:
        """The check :meth:`to_dict` wrote (a stored report read back)."""
        status = value.get("status")
        return cls(
            id=str(value.get("id", "")),
            area=str(value.get("area", "")),
            title=str(value.get("title", "")),
            status=status if status in STATUSES else "unknown",
            found=str(value.get("found", "")),
            advice=str(value.get("advice", "")),
            data=dict(value.get("data") or {}),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Report:
    """Every check of one doctor run, in the order they were made."""

    checks: tuple[Check, ...]
    at: float = field(default_factory=time.time)
    """When the checks were made (seconds since the epoch)."""

    @classmethod
    def of(cls, checks: Iterable[Check]) -> Report:
        return cls(checks=tuple(checks))

    @property
    def ok(self) -> bool:
        """Whether nothing stops jobs from running (no ``fail``)."""
        return not any(c.status == "fail" for c in self.checks)

    def count(self, status: Status) -> int:
        """How many checks have ``status``."""
        return sum(1 for c in self.checks if c.status == status)

    def areas(self) -> dict[str, list[Check]]:
        """The checks grouped by area, areas in the order they first appear."""
        grouped: dict[str, list[Check]] = {}
        for check in self.checks:
            grouped.setdefault(check.area, []).append(check)
        return grouped

    def get(self, check_id: str) -> Check | None:
        """The check named ``check_id``, if it was made."""
        return next((c for c in self.checks if c.id == check_id), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``ok``, ``at``, counts per status and the checks."""
        return {
            "ok": self.ok,
            "at": self.at,
            "counts": {status: self.count(status) for status in STATUSES},
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Report:
        """The report :meth:`to_dict` wrote."""
        checks = value.get("checks") or []
        at = value.get("at")
        return cls(
            checks=tuple(Check.from_dict(c) for c in checks if isinstance(c, Mapping)),
            at=float(at) if isinstance(at, int | float) else 0.0,
        )
