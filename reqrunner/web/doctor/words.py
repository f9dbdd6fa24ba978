"""Small wording helpers for doctor's findings."""

from __future__ import annotations

__all__ = ["seconds", "size"]


def size(value: float | None) -> str:
    """Bytes for people: ``"3.2 MB"``; ``"an unknown size"`` for ``None``."""
    if value is None:
        return "an unknown size"
    amount = float(value)
    for unit in ("bytes", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def seconds(value: float) -> str:
    """A span for people: ``"42 s"``, ``"3 min"``, ``"1.5 h"``, ``"2.0 days"``."""
    value = abs(value)
    if value < 60:
        return f"{value:.0f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    if value < 86400:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} days"
