"""Which Content Security Policies let the ``js`` trigger's script load and POST."""

from __future__ import annotations

import pytest

from reqrunner.web.doctor.csp import blocked_by

ORIGIN = "https://example.org"


@pytest.mark.parametrize(
    "policies",
    [
        [],
        ["default-src 'self'"],
        ["script-src 'nonce-r4nd0m' 'strict-dynamic'; connect-src 'self'"],
        ["default-src https://example.org"],
        ["img-src *; script-src https: 'unsafe-inline'; connect-src *"],
        ["frame-ancestors 'none'"],
    ],
)
def test_policies_that_admit_the_trigger(policies: list[str]) -> None:
    assert blocked_by(policies, ORIGIN) is None


@pytest.mark.parametrize(
    ("policies", "directive"),
    [
        (["default-src 'none'"], "default-src 'none'"),
        (["script-src https://cdn.example.net"], "script-src https://cdn.example.net"),
        (["script-src 'self'; connect-src 'none'"], "connect-src 'none'"),
        (["default-src 'self'; connect-src https://api.example.net"], "connect-src"),
        # Every policy sent must allow it: the second one refuses.
        (["default-src *", "script-src 'none'"], "script-src 'none'"),
        (["script-src-elem 'none'; script-src 'self'"], "script-src-elem 'none'"),
    ],
)
def test_policies_that_refuse_it_name_the_directive(policies: list[str], directive: str) -> None:
    found = blocked_by(policies, ORIGIN)
    assert found is not None and found.startswith(directive)
