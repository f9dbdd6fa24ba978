"""A dispatch whose arguments don't fit names what is wrong, the misspelt keyword first."""

from __future__ import annotations

import pytest

import reqrunner


def test_an_unexpected_keyword_is_named(queue: reqrunner.JobQueue) -> None:
    @queue.job
    def send_welcome(address: str) -> None:
        """Would send a mail."""

    with pytest.raises(TypeError) as caught:
        send_welcome.dispatch(email="ann@example.org")
    message = str(caught.value)
    assert "unexpected keyword argument(s) 'email'" in message
    assert message.index("'email'") < message.index("missing a required argument: 'address'")
    assert queue.stats().waiting == 0


def test_keywords_a_function_takes_are_not_blamed(queue: reqrunner.JobQueue) -> None:
    @queue.job
    def tag(page: int, *, label: str, **extra: str) -> None:
        """Takes any keyword."""

    with pytest.raises(TypeError) as caught:
        tag.dispatch(label="x", colour="red")  # page is missing; colour goes to **extra
    assert "unexpected keyword" not in str(caught.value)
    assert "missing a required argument: 'page'" in str(caught.value)
