"""Stream tokens: minted by the answer webhook for one call, checked when its stream starts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from voicebot.calls.tokens import (
    StreamTokenRefused,
    TokenProblem,
    check_stream_token,
    issue_stream_token,
)

SECRET = "auth-token"
NOW = datetime(2024, 12, 11, 1, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


def _problem(token: str | None, *, call_id: int = 7, now: datetime = NOW) -> TokenProblem:
    with pytest.raises(StreamTokenRefused) as refused:
        check_stream_token((SECRET,), call_id, token, now=now)
    return refused.value.problem


def test_a_token_opens_its_own_call_until_it_expires() -> None:
    token = issue_stream_token(SECRET, 7, now=NOW, ttl=TTL)
    check_stream_token((SECRET,), 7, token, now=NOW)
    check_stream_token((SECRET,), 7, token, now=NOW + TTL)
    assert _problem(token, now=NOW + TTL + timedelta(seconds=1)) is TokenProblem.EXPIRED


def test_a_token_names_one_call_and_one_secret() -> None:
    token = issue_stream_token(SECRET, 7, now=NOW, ttl=TTL)
    assert _problem(token, call_id=8) is TokenProblem.FORGED
    other = issue_stream_token("another-secret", 7, now=NOW, ttl=TTL)
    assert _problem(other) is TokenProblem.FORGED
    expires, _, digest = token.partition(".")
    # A later expiry does not keep the signature valid.
    assert _problem(f"{int(expires) + 3600}.{digest}") is TokenProblem.FORGED


@pytest.mark.parametrize("token", ["", "abc", "12.xyz", "x" * 80, "1." + "0" * 63, None])
def test_missing_or_malformed_tokens_are_refused(token: str | None) -> None:
    expected = TokenProblem.MISSING if not token else TokenProblem.MALFORMED
    assert _problem(token) is expected


def test_a_token_issued_with_the_previous_secret_opens_the_call_while_it_is_rotated_out() -> None:
    old = issue_stream_token("old-token", 7, now=NOW, ttl=TTL)
    check_stream_token((SECRET, "old-token"), 7, old, now=NOW)
    assert _problem(old) is TokenProblem.FORGED  # once the rotation is over
