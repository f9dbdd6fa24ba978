"""The public surface: ``__all__`` is complete, sorted and importable."""

from __future__ import annotations

import subprocess
import sys

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
