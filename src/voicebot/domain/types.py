"""The words the whole system speaks: statuses, dispositions, reasons, roles."""

from __future__ import annotations

from enum import StrEnum


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class CallBackStatus(StrEnum):
    PENDING = "pending"  # waiting for its due time
    CLAIMED = "claimed"  # leased by a dialer; returns to the queue when the lease expires
    DIALED = "dialed"  # the carrier accepted the call; the call's end decides what follows
    DONE = "done"  # finished: a follow-up, if any, is a new call-back
    CANCELLED = "cancelled"  # its campaign was cancelled, or the number opted out


class CallBackReason(StrEnum):
    INITIAL = "initial"
    RETRY = "retry"
    BORROWER_REQUEST = "borrower_request"
    BROKEN_PROMISE = "broken_promise"


class CallStatus(StrEnum):
    """Twilio's CallStatus values, plus ``initiating`` until the carrier accepts the request."""

    INITIATING = "initiating"
    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def rank(self) -> int:
        """Progress order: a call never moves to a lower rank (events arrive out of order)."""
        return _CALL_STATUS_RANK[self]

    @property
    def is_final(self) -> bool:
        return self.rank == _FINAL_RANK


_FINAL_RANK = 5
_CALL_STATUS_RANK = {
    CallStatus.INITIATING: 0,
    CallStatus.QUEUED: 1,
    CallStatus.INITIATED: 2,
    CallStatus.RINGING: 3,
    CallStatus.IN_PROGRESS: 4,
    CallStatus.COMPLETED: _FINAL_RANK,
    CallStatus.BUSY: _FINAL_RANK,
    CallStatus.NO_ANSWER: _FINAL_RANK,
    CallStatus.FAILED: _FINAL_RANK,
    CallStatus.CANCELED: _FINAL_RANK,
}


class Disposition(StrEnum):
    """How a call ended, as the dialer sees it: this decides what happens next."""

    ANSWERED = "answered"  # a person answered and a conversation took place
    # A person answered but hung up within the minimum conversation length: retried like NO_ANSWER.
    HUNG_UP = "hung_up"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    VOICEMAIL = "voicemail"  # an answering machine (or fax) picked up
    CANCELED = "canceled"
    INVALID_NUMBER = "invalid_number"
    OPTED_OUT = "opted_out"


class PhoneStatus(StrEnum):
    VALID = "valid"
    INVALID = "invalid"  # the carrier said the number does not exist
    OPTED_OUT = "opted_out"


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    ANALYST = "analyst"

    def allows(self, needed: Role) -> bool:
        """Admin may do everything; operators run campaigns and read; analysts only read."""
        return _ROLE_LEVEL[self] >= _ROLE_LEVEL[needed]


_ROLE_LEVEL = {Role.ANALYST: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class OutcomeType(StrEnum):
    CONFIRMATION = "confirmation"
    PROMISE = "promise"
    COMPLAINT = "complaint"
    CALLBACK_REQUEST = "callback_request"
    OPT_OUT = "opt_out"
    WRONG_PARTY = "wrong_party"
    DISPUTE = "dispute"
    RISK_FLAG = "risk_flag"
