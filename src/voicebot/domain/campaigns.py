"""Campaigns: the life cycle (draft → running ⇄ paused → completed | cancelled) and the rules a
campaign's settings must satisfy, built with the same constructors the dialer uses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from enum import StrEnum

from voicebot.domain.compliance import CallingWindow, ComplianceRules
from voicebot.domain.retry import DEFAULT_RETRY_DELAYS, RetryRules
from voicebot.domain.types import CampaignStatus, Disposition


class CampaignAction(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    COMPLETE = "complete"


class InvalidTransition(ValueError):
    """The campaign's status does not allow the action; ``reason`` says why, for people."""

    def __init__(self, status: CampaignStatus, action: CampaignAction, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.action = action
        self.reason = reason


FINISHED = frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED})


class MachineDetection(StrEnum):
    """Answering-machine detection, in Twilio's own words (``MachineDetection``)."""

    OFF = "off"
    ENABLE = "Enable"  # answers as soon as a person or a machine is recognised
    DETECT_MESSAGE_END = "DetectMessageEnd"  # for a machine, waits for the greeting's end


class MachineAction(StrEnum):
    """What a call does once an answering machine is detected."""

    HANG_UP = "hang_up"
    LEAVE_MESSAGE = "leave_message"  # the dialog's voicemail, which never mentions the debt


class CallerIdMode(StrEnum):
    ROTATE = "rotate"  # the campaign's caller numbers in turn
    REGION = "region"  # the one sharing the borrower's country and area code, else in turn


def check_machine_settings(detection: MachineDetection, action: MachineAction) -> None:
    """A message is left after the machine's beep, which only DetectMessageEnd waits for."""
    if (
        action is MachineAction.LEAVE_MESSAGE
        and detection is not MachineDetection.DETECT_MESSAGE_END
    ):
        raise ValueError(
            "machine_action leave_message needs machine_detection DetectMessageEnd (the message "
            "must start after the answering machine's beep)"
        )


_NEXT: Mapping[tuple[CampaignStatus, CampaignAction], CampaignStatus] = {
    (CampaignStatus.DRAFT, CampaignAction.START): CampaignStatus.RUNNING,
    (CampaignStatus.RUNNING, CampaignAction.PAUSE): CampaignStatus.PAUSED,
    (CampaignStatus.PAUSED, CampaignAction.RESUME): CampaignStatus.RUNNING,
    (CampaignStatus.DRAFT, CampaignAction.CANCEL): CampaignStatus.CANCELLED,
    (CampaignStatus.RUNNING, CampaignAction.CANCEL): CampaignStatus.CANCELLED,
    (CampaignStatus.PAUSED, CampaignAction.CANCEL): CampaignStatus.CANCELLED,
    (CampaignStatus.RUNNING, CampaignAction.COMPLETE): CampaignStatus.COMPLETED,
}


def transition(status: CampaignStatus, action: CampaignAction) -> CampaignStatus:
    """The status after ``action``; raises InvalidTransition when ``status`` does not allow it."""
    target = _NEXT.get((status, action))
    if target is not None:
        return target
    raise InvalidTransition(status, action, _refusal(status, action))


def _refusal(status: CampaignStatus, action: CampaignAction) -> str:
    if status in FINISHED:
        return f"the campaign is {status}; a {status} campaign never changes state again"
    if status is CampaignStatus.DRAFT:
        if action is CampaignAction.RESUME:
            return "the campaign is a draft, never started; start it instead"
        return f"the campaign is a draft; it cannot {action} before it has been started"
    if status is CampaignStatus.RUNNING:
        return f"the campaign is already running; it cannot {action}"
    if action is CampaignAction.START:
        return "the campaign is paused; resume it instead"
    return f"the campaign is paused; it cannot {action} until it is resumed"


def accepts_contacts(status: CampaignStatus) -> bool:
    """Contacts may be imported until the campaign has finished."""
    return status not in FINISHED


def is_editable(status: CampaignStatus) -> bool:
    """Settings change only in a draft: a running campaign keeps the rules it was started with."""
    return status is CampaignStatus.DRAFT


_DIALOG_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


def check_dialog_id(value: str) -> str:
    """A dialog id names a file under ``dialogs/``: letters, digits, ``_ . -``, no path tricks."""
    if not _DIALOG_ID.fullmatch(value) or ".." in value:
        raise ValueError(
            "dialog_id must be 1-200 letters, digits, '_', '.' or '-', start with a letter or "
            "digit, and not contain '..'"
        )
    return value


# A retry delay for these would never be used: answered chains finish, opted-out numbers stop.
_NEVER_RETRIED = frozenset({Disposition.ANSWERED, Disposition.OPTED_OUT})


def retry_delays_from(raw: Mapping[str, int]) -> dict[Disposition, timedelta]:
    """Seconds per disposition name, checked against the dispositions the dialer knows."""
    delays: dict[Disposition, timedelta] = {}
    for name, seconds in raw.items():
        try:
            disposition = Disposition(name)
        except ValueError:
            known = ", ".join(d.value for d in Disposition if d not in _NEVER_RETRIED)
            raise ValueError(
                f"unknown disposition {name!r} in retry_delays (known: {known})"
            ) from None
        if disposition in _NEVER_RETRIED:
            raise ValueError(f"{name!r} calls are never retried; it takes no retry delay")
        if seconds < 0:
            raise ValueError(f"retry delay for {name!r} must not be negative")
        delays[disposition] = timedelta(seconds=seconds)
    return delays


@dataclass(frozen=True, slots=True)
class CampaignRules:
    compliance: ComplianceRules
    retry: RetryRules


def campaign_rules(
    *,
    window_start: time,
    window_end: time,
    weekdays: frozenset[int],
    max_attempts_per_period: int,
    attempt_period_days: int,
    max_conversations_per_day: int,
    quiet_period_hours: int,
    max_attempts: int,
    retry_delays: Mapping[str, int],
    switch_number_after: int,
) -> CampaignRules:
    """The rules a campaign's stored settings describe; raises ValueError for settings the
    compliance gate or the retry policy would refuse."""
    compliance = ComplianceRules(
        window=CallingWindow(start=window_start, end=window_end, weekdays=weekdays),
        max_attempts_per_period=max_attempts_per_period,
        attempt_period=timedelta(days=attempt_period_days),
        max_conversations_per_day=max_conversations_per_day,
        quiet_period=timedelta(hours=quiet_period_hours),
    )
    retry = RetryRules(
        max_attempts=max_attempts,
        delays={**DEFAULT_RETRY_DELAYS, **retry_delays_from(retry_delays)},
        switch_number_after=switch_number_after,
    )
    return CampaignRules(compliance=compliance, retry=retry)
