"""The retry policy: what follows each disposition, and which number is dialed next."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from voicebot.domain.retry import (
    NO_PHONE_CHANGE,
    Finished,
    PhoneChange,
    PhoneState,
    Retry,
    RetryRules,
    StopCalling,
    after_call,
    choose_phone,
    counts_as_failure,
    disposition_for,
    phone_after_call,
)
from voicebot.domain.types import CallBackReason, Disposition, PhoneStatus

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
RULES = RetryRules()


@pytest.mark.parametrize(
    ("disposition", "delay"),
    [
        (Disposition.NO_ANSWER, timedelta(hours=2)),
        (Disposition.HUNG_UP, timedelta(hours=2)),
        (Disposition.BUSY, timedelta(minutes=30)),
        (Disposition.FAILED, timedelta(hours=4)),
        (Disposition.VOICEMAIL, timedelta(hours=4)),
        (Disposition.CANCELED, timedelta(hours=1)),
        (Disposition.INVALID_NUMBER, timedelta(0)),
    ],
)
def test_each_unreached_disposition_retries_after_its_delay(
    disposition: Disposition, delay: timedelta
) -> None:
    step = after_call(disposition, attempts_made=1, rules=RULES, now=NOW)
    assert step == Retry(at=NOW + delay, reason=CallBackReason.RETRY)


def test_campaign_delays_override_the_defaults() -> None:
    rules = RetryRules(delays={Disposition.BUSY: timedelta(minutes=5)})
    assert after_call(Disposition.BUSY, attempts_made=1, rules=rules, now=NOW) == Retry(
        NOW + timedelta(minutes=5), CallBackReason.RETRY
    )
    # Dispositions the campaign leaves out keep the default.
    assert after_call(Disposition.NO_ANSWER, attempts_made=1, rules=rules, now=NOW) == Retry(
        NOW + timedelta(hours=2), CallBackReason.RETRY
    )


def test_answered_finishes_and_max_attempts_end_the_chain() -> None:
    assert after_call(Disposition.ANSWERED, attempts_made=1, rules=RULES, now=NOW) == Finished(
        "answered"
    )
    rules = RetryRules(max_attempts=3)
    assert isinstance(after_call(Disposition.BUSY, attempts_made=2, rules=rules, now=NOW), Retry)
    assert after_call(Disposition.BUSY, attempts_made=3, rules=rules, now=NOW) == Finished(
        "max_attempts"
    )


def test_borrower_requested_time_is_honoured_past_max_attempts() -> None:
    asked = NOW + timedelta(days=2)
    step = after_call(
        Disposition.ANSWERED, attempts_made=9, rules=RULES, now=NOW, requested_at=asked
    )
    assert step == Retry(at=asked, reason=CallBackReason.BORROWER_REQUEST)
    # A time already past means as soon as the gate allows.
    past = after_call(
        Disposition.HUNG_UP, attempts_made=1, rules=RULES, now=NOW, requested_at=NOW - timedelta(1)
    )
    assert past == Retry(at=NOW, reason=CallBackReason.BORROWER_REQUEST)


def test_opt_out_stops_calling_even_with_a_requested_time() -> None:
    step = after_call(
        Disposition.OPTED_OUT, attempts_made=1, rules=RULES, now=NOW, requested_at=NOW
    )
    assert step == StopCalling("opted_out")


def test_numbers_switch_after_consecutive_failures() -> None:
    rules = RetryRules(switch_number_after=2)
    valid = PhoneStatus.VALID
    assert choose_phone([PhoneState(valid, 1), PhoneState(valid, 0)], rules) == 0
    assert choose_phone([PhoneState(valid, 2), PhoneState(valid, 0)], rules) == 1
    # Every number failed often: the one that failed least.
    assert choose_phone([PhoneState(valid, 4), PhoneState(valid, 3)], rules) == 1
    assert choose_phone([PhoneState(valid, 3), PhoneState(valid, 3)], rules) == 0


def test_invalid_and_opted_out_numbers_are_never_chosen() -> None:
    phones = [
        PhoneState(PhoneStatus.INVALID, 0),
        PhoneState(PhoneStatus.OPTED_OUT, 0),
        PhoneState(PhoneStatus.VALID, 5),
    ]
    assert choose_phone(phones, RULES) == 2
    assert choose_phone(phones[:2], RULES) is None
    assert choose_phone([], RULES) is None


@pytest.mark.parametrize(
    ("disposition", "after"),
    [
        (Disposition.BUSY, PhoneState(PhoneStatus.VALID, 2)),
        (Disposition.NO_ANSWER, PhoneState(PhoneStatus.VALID, 2)),
        (Disposition.FAILED, PhoneState(PhoneStatus.VALID, 2)),
        (Disposition.INVALID_NUMBER, PhoneState(PhoneStatus.INVALID, 2)),
        (Disposition.ANSWERED, PhoneState(PhoneStatus.VALID, 0)),
        (Disposition.HUNG_UP, PhoneState(PhoneStatus.VALID, 0)),
        (Disposition.VOICEMAIL, PhoneState(PhoneStatus.VALID, 1)),
        (Disposition.CANCELED, PhoneState(PhoneStatus.VALID, 1)),
    ],
)
def test_phone_state_after_a_call(disposition: Disposition, after: PhoneState) -> None:
    assert phone_after_call(PhoneState(PhoneStatus.VALID, 1), disposition) == after
    assert counts_as_failure(disposition) == (after.consecutive_failures == 2)


def test_an_opted_out_number_stays_opted_out() -> None:
    opted = PhoneState(PhoneStatus.OPTED_OUT, 0)
    assert phone_after_call(opted, Disposition.INVALID_NUMBER).status is PhoneStatus.OPTED_OUT


def _ended(dispositions: tuple[Disposition, ...]) -> PhoneChange:
    change = NO_PHONE_CHANGE
    for disposition in dispositions:
        change = change.after(disposition)
    return change


@pytest.mark.parametrize(
    "start",
    [
        PhoneState(PhoneStatus.VALID, 0),
        PhoneState(PhoneStatus.VALID, 2),
        PhoneState(PhoneStatus.INVALID, 1),
        PhoneState(PhoneStatus.OPTED_OUT, 1),
    ],
)
def test_calls_ended_in_two_transactions_change_the_number_as_one_after_the_other(
    start: PhoneState,
) -> None:
    """Each transaction writes its calls' change to the number as it finds it, so the number
    ends as if every call had ended in turn, however the calls were split between them."""
    for calls in itertools.product(list(Disposition), repeat=3):
        in_turn = start
        for disposition in calls:
            in_turn = phone_after_call(in_turn, disposition)
        for split in range(len(calls) + 1):
            first, second = _ended(calls[:split]), _ended(calls[split:])
            assert second.applied_to(first.applied_to(start)) == in_turn, (calls, split)


def test_a_change_is_relative_to_the_number_when_written() -> None:
    busy = NO_PHONE_CHANGE.after(Disposition.BUSY)
    assert busy == PhoneChange(reset=False, failures=1, invalid=False)
    assert busy.applied_to(PhoneState(PhoneStatus.VALID, 4)) == PhoneState(PhoneStatus.VALID, 5)
    answered_then_busy = busy.after(Disposition.ANSWERED).after(Disposition.NO_ANSWER)
    assert answered_then_busy == PhoneChange(reset=True, failures=1, invalid=False)


@pytest.mark.parametrize(
    ("status", "answered_by", "duration", "error", "expected"),
    [
        ("completed", "human", 60, None, Disposition.ANSWERED),
        ("completed", None, 60, None, Disposition.ANSWERED),
        ("completed", None, None, None, Disposition.ANSWERED),
        ("completed", "human", 4, None, Disposition.HUNG_UP),
        ("completed", "human", 5, None, Disposition.ANSWERED),
        ("completed", "machine_end_beep", 18, None, Disposition.VOICEMAIL),
        ("completed", "machine_start", 2, None, Disposition.VOICEMAIL),
        ("completed", "fax", 1, None, Disposition.VOICEMAIL),
        ("busy", None, 0, None, Disposition.BUSY),
        ("no-answer", None, 0, None, Disposition.NO_ANSWER),
        ("failed", None, 0, None, Disposition.FAILED),
        ("failed", None, 0, "21211", Disposition.INVALID_NUMBER),
        ("failed", None, 0, "30001", Disposition.FAILED),
        ("canceled", None, 0, None, Disposition.CANCELED),
        ("something-new", None, None, None, Disposition.FAILED),
    ],
)
def test_disposition_from_twilio_fields(
    status: str, answered_by: str | None, duration: int | None, error: str | None, expected: str
) -> None:
    assert disposition_for(status, answered_by, duration, error_code=error) is expected


def test_min_conversation_length_is_a_rule() -> None:
    assert (
        disposition_for("completed", "human", 8, min_conversation_seconds=10) is Disposition.HUNG_UP
    )
    with pytest.raises(ValueError):
        RetryRules(min_conversation_seconds=-1)
    with pytest.raises(ValueError):
        RetryRules(max_attempts=0)
    with pytest.raises(ValueError):
        RetryRules(switch_number_after=0)
    with pytest.raises(ValueError):
        RetryRules(delays={Disposition.BUSY: timedelta(seconds=-1)})
