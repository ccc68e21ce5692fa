"""The compliance gate: local calling windows, DST, rolling caps, quiet periods, opt-outs."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from voicebot.domain.compliance import (
    Allow,
    CallingWindow,
    ComplianceRules,
    Defer,
    DialHistory,
    Refuse,
    check,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
SEOUL = ZoneInfo("Asia/Seoul")
RULES = ComplianceRules()
NOTHING = DialHistory()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold).astimezone(UTC)


@pytest.mark.parametrize(
    ("tz", "now", "opens"),
    [
        # Tuesday 2026-03-10: 12:00 in Shanghai, 13:00 in Seoul: open.
        (SHANGHAI, utc(2026, 3, 10, 4, 0), None),
        (SEOUL, utc(2026, 3, 10, 4, 0), None),
        # The same instant is midnight in New York: closed until 08:00 EDT.
        (NEW_YORK, utc(2026, 3, 10, 4, 0), local(NEW_YORK, 2026, 3, 10, 8, 0)),
        # 21:00 sharp is closed; 20:59 is open.
        (SHANGHAI, local(SHANGHAI, 2026, 3, 10, 21, 0), local(SHANGHAI, 2026, 3, 11, 8, 0)),
        (SHANGHAI, local(SHANGHAI, 2026, 3, 10, 20, 59), None),
        # 07:59 in Seoul waits a minute.
        (SEOUL, local(SEOUL, 2026, 3, 10, 7, 59), local(SEOUL, 2026, 3, 10, 8, 0)),
    ],
)
def test_default_window_is_in_the_borrowers_local_time(
    tz: ZoneInfo, now: datetime, opens: datetime | None
) -> None:
    decision = check(RULES, now=now, tz=tz, history=NOTHING)
    if opens is None:
        assert decision == Allow()
    else:
        assert decision == Defer(until=opens, reason="calling_window")


def test_window_crossing_midnight_belongs_to_the_day_it_opens() -> None:
    friday_nights = CallingWindow(start=time(20, 0), end=time(2, 0), weekdays=frozenset({4}))
    rules = ComplianceRules(window=friday_nights)
    # 2026-03-14 is a Saturday: 01:00 is still Friday's window, 03:00 is past it.
    assert (
        check(rules, now=local(SHANGHAI, 2026, 3, 14, 1, 0), tz=SHANGHAI, history=NOTHING)
        == Allow()
    )
    after = check(rules, now=local(SHANGHAI, 2026, 3, 14, 3, 0), tz=SHANGHAI, history=NOTHING)
    assert after == Defer(until=local(SHANGHAI, 2026, 3, 20, 20, 0), reason="calling_window")
    # Saturday evening is not a window opening day.
    evening = check(rules, now=local(SHANGHAI, 2026, 3, 14, 21, 0), tz=SHANGHAI, history=NOTHING)
    assert isinstance(evening, Defer) and evening.until == local(SHANGHAI, 2026, 3, 20, 20, 0)


def test_all_day_window_is_always_open() -> None:
    rules = ComplianceRules(window=CallingWindow(start=time(0, 0), end=time(0, 0)))
    for hour in range(24):
        assert check(rules, now=utc(2026, 3, 8, hour, 30), tz=NEW_YORK, history=NOTHING) == Allow()


def test_new_york_spring_forward_moves_the_window_in_utc() -> None:
    # 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT; 08:00 is 13:00Z before, 12:00Z after.
    saturday = check(RULES, now=utc(2026, 3, 7, 12, 0), tz=NEW_YORK, history=NOTHING)
    sunday = check(RULES, now=utc(2026, 3, 8, 11, 0), tz=NEW_YORK, history=NOTHING)
    assert saturday == Defer(until=utc(2026, 3, 7, 13, 0), reason="calling_window")
    assert sunday == Defer(until=utc(2026, 3, 8, 12, 0), reason="calling_window")
    # 21:00 EDT on Sunday is 01:00Z Monday: 00:59Z is still allowed.
    assert check(RULES, now=utc(2026, 3, 9, 0, 59), tz=NEW_YORK, history=NOTHING) == Allow()


def test_a_window_opening_in_the_spring_gap_opens_after_it() -> None:
    # 02:30 does not exist on 2026-03-08 in New York; the window opens at 03:30 EDT, never before.
    rules = ComplianceRules(window=CallingWindow(start=time(2, 30), end=time(21, 0)))
    decision = check(rules, now=utc(2026, 3, 8, 5, 0), tz=NEW_YORK, history=NOTHING)
    assert decision == Defer(until=utc(2026, 3, 8, 7, 30), reason="calling_window")
    assert utc(2026, 3, 8, 7, 30).astimezone(NEW_YORK).hour == 3


def test_new_york_fall_back_reads_repeated_hours_narrowly() -> None:
    # 2026-11-01: 01:00-02:00 happens twice (EDT, then EST).
    opens_at_0130 = ComplianceRules(window=CallingWindow(start=time(1, 30), end=time(21, 0)))
    first_0130 = local(NEW_YORK, 2026, 11, 1, 1, 30, fold=0)  # 05:30Z, EDT
    second_0130 = local(NEW_YORK, 2026, 11, 1, 1, 30, fold=1)  # 06:30Z, EST
    assert second_0130 - first_0130 == timedelta(hours=1)
    decision = check(opens_at_0130, now=first_0130, tz=NEW_YORK, history=NOTHING)
    assert decision == Defer(until=second_0130, reason="calling_window")

    closes_at_0130 = ComplianceRules(window=CallingWindow(start=time(20, 0), end=time(1, 30)))
    inside = first_0130 - timedelta(minutes=1)
    assert check(closes_at_0130, now=inside, tz=NEW_YORK, history=NOTHING) == Allow()
    late = check(closes_at_0130, now=first_0130, tz=NEW_YORK, history=NOTHING)
    assert late == Defer(until=local(NEW_YORK, 2026, 11, 1, 20, 0), reason="calling_window")
    # The regular window on the fall-back day: 08:00 EST is 13:00Z (12:00Z the day before).
    assert check(RULES, now=utc(2026, 11, 1, 12, 30), tz=NEW_YORK, history=NOTHING) == Defer(
        until=utc(2026, 11, 1, 13, 0), reason="calling_window"
    )


def test_weekday_rules_skip_to_the_next_allowed_day() -> None:
    weekdays_only = ComplianceRules(window=CallingWindow(weekdays=frozenset(range(5))))
    saturday_noon = local(SHANGHAI, 2026, 3, 14, 12, 0)
    decision = check(weekdays_only, now=saturday_noon, tz=SHANGHAI, history=NOTHING)
    assert decision == Defer(until=local(SHANGHAI, 2026, 3, 16, 8, 0), reason="calling_window")
    with pytest.raises(ValueError, match="weekdays"):
        CallingWindow(weekdays=frozenset())
    with pytest.raises(ValueError, match="weekdays"):
        CallingWindow(weekdays=frozenset({7}))


def test_rolling_attempt_cap_frees_when_the_oldest_attempt_leaves_the_period() -> None:
    now = local(SHANGHAI, 2026, 3, 10, 12, 0)
    attempts = [now - timedelta(days=d, hours=1) for d in range(7)]  # 7 in the last 7 days
    decision = check(RULES, now=now, tz=SHANGHAI, history=DialHistory(attempts=attempts))
    assert decision == Defer(until=attempts[-1] + timedelta(days=7), reason="attempt_cap")
    # Six attempts leave room for a seventh; attempts older than the period do not count.
    six = DialHistory(attempts=[*attempts[:6], now - timedelta(days=7, seconds=1)])
    assert check(RULES, now=now, tz=SHANGHAI, history=six) == Allow()


def test_attempt_cap_and_window_combine() -> None:
    now = local(SHANGHAI, 2026, 3, 10, 12, 0)
    # The cap frees at 02:00 local, outside the window: the call waits for 08:00.
    attempts = [local(SHANGHAI, 2026, 3, 4, 2, 0)] + [now - timedelta(hours=h) for h in range(1, 7)]
    decision = check(RULES, now=now, tz=SHANGHAI, history=DialHistory(attempts=attempts))
    assert decision == Defer(until=local(SHANGHAI, 2026, 3, 11, 8, 0), reason="attempt_cap")


def test_daily_conversation_cap_counts_the_borrowers_local_day() -> None:
    now = local(SEOUL, 2026, 3, 10, 15, 0)
    today = [local(SEOUL, 2026, 3, 10, h, 0) for h in (9, 11, 13)]
    capped = check(RULES, now=now, tz=SEOUL, history=DialHistory(conversations=today))
    assert capped == Defer(until=local(SEOUL, 2026, 3, 11, 8, 0), reason="daily_conversation_cap")
    # Yesterday evening's conversations, within 24 hours, are another local day.
    mixed = [local(SEOUL, 2026, 3, 9, 22, 0), *today[1:]]
    assert check(RULES, now=now, tz=SEOUL, history=DialHistory(conversations=mixed)) == Allow()
    # The same instants are one local day in New York, where the cap binds until midnight.
    ny_now = local(NEW_YORK, 2026, 3, 10, 12, 0)
    ny_talks = [ny_now - timedelta(hours=h) for h in (1, 2, 3)]
    ny = check(RULES, now=ny_now, tz=NEW_YORK, history=DialHistory(conversations=ny_talks))
    assert ny == Defer(until=local(NEW_YORK, 2026, 3, 11, 8, 0), reason="daily_conversation_cap")


def test_quiet_period_after_a_conversation() -> None:
    rules = ComplianceRules(quiet_period=timedelta(days=7))
    now = local(NEW_YORK, 2026, 3, 10, 12, 0)
    talked = now - timedelta(days=2, hours=1)
    decision = check(rules, now=now, tz=NEW_YORK, history=DialHistory(conversations=[talked]))
    assert decision == Defer(until=talked + timedelta(days=7), reason="quiet_period")
    long_ago = DialHistory(conversations=[now - timedelta(days=8)])
    assert check(rules, now=now, tz=NEW_YORK, history=long_ago) == Allow()


def test_opted_out_is_refused_whatever_the_time() -> None:
    night = local(SHANGHAI, 2026, 3, 10, 23, 0)
    assert check(RULES, now=night, tz=SHANGHAI, history=NOTHING, opted_out=True) == Refuse(
        "opted_out"
    )


def test_times_must_be_aware_utc_and_rules_sane() -> None:
    with pytest.raises(ValueError, match="UTC"):
        check(RULES, now=datetime(2026, 3, 10, 4, 0), tz=SHANGHAI, history=NOTHING)
    with pytest.raises(ValueError, match="UTC"):
        check(
            RULES, now=datetime(2026, 3, 10, 12, 0, tzinfo=SHANGHAI), tz=SHANGHAI, history=NOTHING
        )
    with pytest.raises(ValueError):
        ComplianceRules(max_attempts_per_period=0)
    with pytest.raises(ValueError):
        ComplianceRules(attempt_period=timedelta(0))


@pytest.mark.parametrize("tz", [SHANGHAI, NEW_YORK, SEOUL])
def test_a_deferred_call_back_is_never_lost(tz: ZoneInfo) -> None:
    """Whatever the history, a deferral names a later instant at which the same history allows
    the call: the call-back always comes round again (DST days included)."""
    rng = random.Random(20260308)
    windows = [
        CallingWindow(),
        CallingWindow(start=time(22, 0), end=time(2, 0)),
        CallingWindow(start=time(2, 30), end=time(3, 0), weekdays=frozenset({6})),
        CallingWindow(start=time(9, 0), end=time(17, 0), weekdays=frozenset(range(5))),
    ]
    base = utc(2026, 3, 1, 0, 0)
    reasons: set[str] = set()
    for _ in range(400):
        rules = ComplianceRules(
            window=rng.choice(windows),
            max_attempts_per_period=rng.randint(1, 7),
            max_conversations_per_day=rng.randint(1, 3),
            quiet_period=timedelta(hours=rng.choice([0, 0, 24, 168])),
        )
        now = base + timedelta(minutes=rng.randrange(0, 60 * 24 * 300))
        history = DialHistory(
            attempts=[
                now - timedelta(minutes=rng.randrange(1, 60 * 24 * 8))
                for _ in range(rng.randint(0, 9))
            ],
            conversations=[
                now - timedelta(minutes=rng.randrange(1, 60 * 30)) for _ in range(rng.randint(0, 4))
            ],
        )
        decision = check(rules, now=now, tz=tz, history=history)
        if isinstance(decision, Defer):
            reasons.add(decision.reason)
            assert decision.until > now
            assert check(rules, now=decision.until, tz=tz, history=history) == Allow()
        else:
            assert decision == Allow()
    assert reasons == {"calling_window", "attempt_cap", "daily_conversation_cap", "quiet_period"}
