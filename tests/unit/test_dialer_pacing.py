"""The token bucket behind the shared calls-per-second limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from voicebot.dialer.pacing import TokenBucket

T0 = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def test_refill_accrues_at_the_rate_up_to_the_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=5.0)
    assert bucket.refill(0.0, T0, T0 + timedelta(seconds=1.5)) == pytest.approx(3.0)
    assert bucket.refill(4.0, T0, T0 + timedelta(minutes=1)) == 5.0


def test_a_clock_behind_another_hosts_never_takes_tokens_away() -> None:
    bucket = TokenBucket(rate=2.0, burst=5.0)
    assert bucket.refill(1.5, T0, T0 - timedelta(seconds=3)) == 1.5


def test_take_grants_whole_tokens_and_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=4.0, burst=4.0)
    assert bucket.take(4.0, 3) == (3, 1.0, 0.0)
    granted, left, wait = bucket.take(2.5, 10)
    assert (granted, left) == (2, 0.5)
    assert wait == pytest.approx(0.125)  # half a token at 4 a second
    assert bucket.take(0.25, 1) == (0, 0.25, pytest.approx(0.1875))
