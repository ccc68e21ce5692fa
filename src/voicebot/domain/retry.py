"""What happens after a call ends: the retry policy per disposition, and which number to dial."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from voicebot.domain.types import CallBackReason, Disposition, PhoneStatus

DEFAULT_RETRY_DELAYS: Mapping[Disposition, timedelta] = MappingProxyType(
    {
        Disposition.NO_ANSWER: timedelta(hours=2),
        Disposition.BUSY: timedelta(minutes=30),
        Disposition.FAILED: timedelta(hours=4),
        Disposition.VOICEMAIL: timedelta(hours=4),
        Disposition.CANCELED: timedelta(hours=1),
        Disposition.INVALID_NUMBER: timedelta(0),
    }
)


@dataclass(frozen=True, slots=True)
class RetryRules:
    max_attempts: int = 5
    delays: Mapping[Disposition, timedelta] = field(default_factory=lambda: DEFAULT_RETRY_DELAYS)
    # Failed attempts in a row on one number before the next number of the contact is tried.
    switch_number_after: int = 2

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.switch_number_after < 1:
            raise ValueError("max_attempts and switch_number_after must be at least 1")
        if any(delay < timedelta(0) for delay in self.delays.values()):
            raise ValueError("retry delays must not be negative")

    def delay_for(self, disposition: Disposition) -> timedelta:
        return self.delays.get(disposition, DEFAULT_RETRY_DELAYS.get(disposition, timedelta(hours=1)))


@dataclass(frozen=True, slots=True)
class Finished:
    reason: str


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime
    reason: CallBackReason


@dataclass(frozen=True, slots=True)
class StopCalling:
    """The borrower opted out: no call-back, in any campaign, to this number."""

    reason: str


NextStep = Finished | Retry | StopCalling


def after_call(
    disposition: Disposition,
    *,
    attempts_made: int,
    rules: RetryRules,
    now: datetime,
    requested_at: datetime | None = None,
) -> NextStep:
    """The next step for a call-back whose ``attempts_made``-th attempt just ended."""
    if disposition is Disposition.OPTED_OUT:
        return StopCalling("opted_out")
    if requested_at is not None:
        # A borrower's own request is honoured whatever the attempt count; the gate still applies.
        return Retry(at=max(requested_at, now), reason=CallBackReason.BORROWER_REQUEST)
    if disposition is Disposition.ANSWERED:
        return Finished("answered")
    if attempts_made >= rules.max_attempts:
        return Finished("max_attempts")
    return Retry(at=now + rules.delay_for(disposition), reason=CallBackReason.RETRY)


@dataclass(frozen=True, slots=True)
class PhoneState:
    status: PhoneStatus
    consecutive_failures: int = 0


def choose_phone(phones: Sequence[PhoneState], rules: RetryRules) -> int | None:
    """Index of the number to dial next: the first valid one that has not failed
    ``switch_number_after`` times in a row; when all have, the valid one that failed least.
    None when no number can be dialed."""
    usable = [i for i, p in enumerate(phones) if p.status is PhoneStatus.VALID]
    if not usable:
        return None
    for index in usable:
        if phones[index].consecutive_failures < rules.switch_number_after:
            return index
    return min(usable, key=lambda i: phones[i].consecutive_failures)


def counts_as_failure(disposition: Disposition) -> bool:
    """Whether a disposition says the number did not reach the borrower."""
    return disposition in {
        Disposition.NO_ANSWER,
        Disposition.BUSY,
        Disposition.FAILED,
        Disposition.INVALID_NUMBER,
    }


def disposition_for(call_status: str, answered_by: str | None) -> Disposition:
    """Map a final Twilio CallStatus (plus AnsweredBy) to the dialer's disposition."""
    if call_status == "completed":
        if answered_by and (answered_by.startswith("machine") or answered_by == "fax"):
            return Disposition.VOICEMAIL
        return Disposition.ANSWERED
    return {
        "busy": Disposition.BUSY,
        "no-answer": Disposition.NO_ANSWER,
        "failed": Disposition.FAILED,
        "canceled": Disposition.CANCELED,
    }.get(call_status, Disposition.FAILED)
