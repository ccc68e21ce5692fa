"""The campaign life cycle and the settings a campaign may have."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

import pytest

from voicebot.domain.campaigns import (
    CampaignAction,
    CampaignRules,
    InvalidTransition,
    accepts_contacts,
    campaign_rules,
    check_dialog_id,
    is_editable,
    retry_delays_from,
    transition,
)
from voicebot.domain.types import CampaignStatus, Disposition

S = CampaignStatus
A = CampaignAction

ALLOWED = {
    (S.DRAFT, A.START): S.RUNNING,
    (S.RUNNING, A.PAUSE): S.PAUSED,
    (S.PAUSED, A.RESUME): S.RUNNING,
    (S.DRAFT, A.CANCEL): S.CANCELLED,
    (S.RUNNING, A.CANCEL): S.CANCELLED,
    (S.PAUSED, A.CANCEL): S.CANCELLED,
    (S.RUNNING, A.COMPLETE): S.COMPLETED,
}


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("action", list(A))
def test_every_pair_is_allowed_or_refused_with_a_reason(
    status: CampaignStatus, action: CampaignAction
) -> None:
    if (status, action) in ALLOWED:
        assert transition(status, action) is ALLOWED[(status, action)]
        return
    with pytest.raises(InvalidTransition) as refused:
        transition(status, action)
    assert refused.value.status is status
    assert refused.value.action is action
    assert status.value in refused.value.reason


def test_refusals_say_what_to_do_instead() -> None:
    with pytest.raises(InvalidTransition, match="start it instead"):
        transition(S.DRAFT, A.RESUME)
    with pytest.raises(InvalidTransition, match="resume it instead"):
        transition(S.PAUSED, A.START)
    with pytest.raises(InvalidTransition, match="already running"):
        transition(S.RUNNING, A.START)
    with pytest.raises(InvalidTransition, match="never changes state again"):
        transition(S.CANCELLED, A.RESUME)


def test_only_drafts_are_edited_and_finished_campaigns_take_no_contacts() -> None:
    assert [s for s in S if is_editable(s)] == [S.DRAFT]
    assert {s for s in S if not accepts_contacts(s)} == {S.COMPLETED, S.CANCELLED}


@pytest.mark.parametrize("dialog_id", ["car_loan_followup.zh-CN", "a", "v2-reminder.en-US"])
def test_dialog_ids_that_name_a_file(dialog_id: str) -> None:
    assert check_dialog_id(dialog_id) == dialog_id


@pytest.mark.parametrize("dialog_id", ["", "../etc/passwd", "a/b", ".hidden", "a..b", "x" * 201])
def test_dialog_ids_that_could_escape_the_dialogs_folder(dialog_id: str) -> None:
    with pytest.raises(ValueError, match="dialog_id"):
        check_dialog_id(dialog_id)


def test_retry_delays_are_checked_against_known_dispositions() -> None:
    assert retry_delays_from({"busy": 60, "no_answer": 0}) == {
        Disposition.BUSY: timedelta(seconds=60),
        Disposition.NO_ANSWER: timedelta(0),
    }
    with pytest.raises(ValueError, match="unknown disposition 'ringing'"):
        retry_delays_from({"ringing": 60})
    with pytest.raises(ValueError, match="never retried"):
        retry_delays_from({"answered": 60})
    with pytest.raises(ValueError, match="negative"):
        retry_delays_from({"busy": -1})


def _rules(**overrides: Any) -> CampaignRules:
    settings: dict[str, Any] = {
        "window_start": time(8),
        "window_end": time(21),
        "weekdays": frozenset(range(7)),
        "max_attempts_per_period": 7,
        "attempt_period_days": 7,
        "max_conversations_per_day": 3,
        "quiet_period_hours": 0,
        "max_attempts": 5,
        "retry_delays": {},
        "switch_number_after": 2,
    }
    settings.update(overrides)
    return campaign_rules(**settings)


def test_campaign_rules_keep_default_delays_for_unlisted_dispositions() -> None:
    rules = campaign_rules(
        window_start=time(9),
        window_end=time(2),
        weekdays=frozenset({0, 1}),
        max_attempts_per_period=4,
        attempt_period_days=3,
        max_conversations_per_day=1,
        quiet_period_hours=24,
        max_attempts=2,
        retry_delays={"busy": 90},
        switch_number_after=1,
    )
    assert rules.compliance.window.crosses_midnight
    assert rules.compliance.attempt_period == timedelta(days=3)
    assert rules.compliance.quiet_period == timedelta(hours=24)
    assert rules.retry.delay_for(Disposition.BUSY) == timedelta(seconds=90)
    assert rules.retry.delay_for(Disposition.NO_ANSWER) == timedelta(hours=2)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"weekdays": frozenset()}, "weekdays"),
        ({"weekdays": frozenset({7})}, "weekdays"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_conversations_per_day": 0}, "at least one call"),
        ({"attempt_period_days": 0}, "attempt_period"),
        ({"retry_delays": {"hung_up_twice": 5}}, "unknown disposition"),
    ],
)
def test_campaign_rules_refuse_what_the_dialer_would(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _rules(**overrides)
