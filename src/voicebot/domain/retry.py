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
        Disposition.HUNG_UP: timedelta(hours=2),
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
    # A human-answered call shorter than this (CallDuration) is HUNG_UP, not a conversation.
    min_conversation_seconds: int = 5

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.switch_number_after < 1:
            raise ValueError("max_attempts and switch_number_after must be at least 1")
        if self.min_conversation_seconds < 0:
            raise ValueError("min_conversation_seconds must not be negative")
        if any(delay < timedelta(0) for delay in self.delays.values()):
            raise ValueError("retry delays must not be negative")

    def delay_for(self, disposition: Disposition) -> timedelta:
        default = DEFAULT_RETRY_DELAYS.get(disposition, timedelta(hours=1))
        return self.delays.get(disposition, default)


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
    return disposition in _FAILURES


_FAILURES = frozenset(
    {Disposition.NO_ANSWER, Disposition.BUSY, Disposition.FAILED, Disposition.INVALID_NUMBER}
)
# A person picked up: the number works, whatever the conversation was.
_REACHES = frozenset({Disposition.ANSWERED, Disposition.HUNG_UP})


def phone_after_call(phone: PhoneState, disposition: Disposition) -> PhoneState:
    """The number's state once a call to it ended: failures count up, a person answering resets
    them, a carrier-confirmed invalid number is never dialed again. Voicemail and cancellations
    say nothing about the number and leave it as it was. An opted-out number stays opted out."""
    return NO_PHONE_CHANGE.after(disposition).applied_to(phone)


@dataclass(frozen=True, slots=True)
class PhoneChange:
    """What calls that ended did to their number, as a change to whatever state the number has
    when it is written rather than a state read earlier: two transactions ending calls to one
    number each add their failures, neither overwrites the other's.

    ``reset``: a person answered, so the failures in a row start again from nought; ``failures``:
    the failures since (or in all, without a reset); ``invalid``: the carrier said the number
    does not exist."""

    reset: bool = False
    failures: int = 0
    invalid: bool = False

    def after(self, disposition: Disposition) -> PhoneChange:
        """This change followed by one more call ending with ``disposition``."""
        if disposition is Disposition.INVALID_NUMBER:
            return PhoneChange(self.reset, self.failures + 1, invalid=True)
        if disposition in _FAILURES:
            return PhoneChange(self.reset, self.failures + 1, self.invalid)
        if disposition in _REACHES:
            return PhoneChange(reset=True, failures=0, invalid=self.invalid)
        return self

    def applied_to(self, phone: PhoneState) -> PhoneState:
        # An opt-out is the stronger fact than an invalid number (and the one the borrower may
        # want to see honoured).
        invalid = self.invalid and phone.status is not PhoneStatus.OPTED_OUT
        failures = (0 if self.reset else phone.consecutive_failures) + self.failures
        return PhoneState(PhoneStatus.INVALID if invalid else phone.status, failures)


NO_PHONE_CHANGE = PhoneChange()


# Twilio error codes meaning the number itself is unusable (the REST API's 21211 "Invalid 'To'
# Phone Number", 21214 "'To' phone number cannot be reached", 21217 "Phone number does not appear
# to be valid", 21401 "Invalid Phone Number", and the <Dial> errors 13223/13224).
INVALID_NUMBER_ERRORS = frozenset({"21211", "21214", "21217", "21401", "13223", "13224"})


def disposition_for(
    call_status: str,
    answered_by: str | None,
    duration_seconds: int | None = None,
    *,
    min_conversation_seconds: int = 5,
    error_code: str | None = None,
) -> Disposition:
    """Map a final Twilio CallStatus (plus AnsweredBy, CallDuration, ErrorCode) to a disposition.

    A completed call without an AnsweredBy is taken as a person (no answering-machine detection);
    without a CallDuration it is taken as a conversation, since nothing says it was short.
    """
    if error_code is not None and error_code in INVALID_NUMBER_ERRORS:
        return Disposition.INVALID_NUMBER
    if call_status == "completed":
        if answered_by and (answered_by.startswith("machine") or answered_by == "fax"):
            return Disposition.VOICEMAIL
        if duration_seconds is not None and duration_seconds < min_conversation_seconds:
            return Disposition.HUNG_UP
        return Disposition.ANSWERED
    return {
        "busy": Disposition.BUSY,
        "no-answer": Disposition.NO_ANSWER,
        "failed": Disposition.FAILED,
        "canceled": Disposition.CANCELED,
    }.get(call_status, Disposition.FAILED)
