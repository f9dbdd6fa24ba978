"""Job arguments as JSON: checked when a job is dispatched, never a surprise in the runner.

Nothing is pickled. A value JSON cannot carry unchanged is a ``TypeError`` at dispatch that
names it and says where it sits. Tuples are accepted and arrive as lists.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["canonical_key", "check_json", "encode", "unique_slot"]

_SCALARS = (str, int, bool, type(None))
# One encoder for every dispatch: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def check_json(value: Any, where: str) -> None:
    """Raise ``TypeError`` unless ``value`` round-trips through JSON as the same data."""
    if isinstance(value, _SCALARS):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value!r}; JSON has no NaN or infinity")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has the key {key!r} ({type(key).__name__}); JSON object keys are "
                    "strings, so it would come back changed: convert it to str first"
                )
            check_json(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} is {value!r} ({type(value).__name__}), which JSON cannot carry: job arguments "
        "must be str, int, float, bool, None, lists and dicts with str keys; pass an id or a "
        "plain value instead (for a datetime, its isoformat())"
    )


def encode(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """Check and encode a job's arguments as its stored payload ``[args, kwargs]``."""
    for i, arg in enumerate(args):
        check_json(arg, f"argument {i}")
    for name, arg in kwargs.items():
        check_json(arg, f"argument {name!r}")
    return _ENCODER.encode([args, kwargs])


def unique_slot(name: str, key: str) -> str:
    """The stored form of a unique key: a hash, scoped to the job's name."""
    return hashlib.sha256(f"{name}\0{key}".encode()).hexdigest()


def canonical_key(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The key of ``unique=True`` jobs: their arguments as canonical JSON."""
    return json.dumps([args, kwargs], separators=(",", ":"), sort_keys=True, ensure_ascii=False)
