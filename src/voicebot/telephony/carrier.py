"""The Carrier port: what the dialer needs from a telephone network.

A carrier places, cancels and hangs up calls; everything that happens to a call afterwards
arrives through webhooks (``POST /webhooks/twilio/status``, ``/amd``, ``/recording``), exactly as
with Twilio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from voicebot.domain.campaigns import MachineDetection


@dataclass(frozen=True, slots=True)
class CallOptions:
    """A campaign's carrier-side settings for each of its calls."""

    ring_timeout_seconds: int = 30  # ringing before the call ends as no-answer
    time_limit_seconds: int = 1800  # the carrier ends any call longer than this
    machine_detection: MachineDetection = MachineDetection.OFF  # asynchronous when on
    record: bool = False


@dataclass(frozen=True, slots=True)
class DialRequest:
    call_id: int  # our calls.id: it travels in the callback URLs so early events find the call
    to: str  # E.164
    from_: str | None
    answer_url: str
    status_callback_url: str
    timeout_seconds: int = 30
    # Free-form hints for the carrier; the simulated carrier reads ``persona`` from here.
    metadata: Mapping[str, str] = field(default_factory=dict)
    options: CallOptions = field(default_factory=CallOptions)
    # Where the asynchronous answering-machine result and the recording's status are posted.
    amd_callback_url: str | None = None
    recording_callback_url: str | None = None


class RefusalKind(StrEnum):
    """What a carrier's refusal means for the dialer's next step."""

    INVALID_NUMBER = "invalid_number"  # the number cannot be dialed: try an alternate
    OPTED_OUT = "opted_out"  # the number unsubscribed at the carrier: never again
    THROTTLED = "throttled"  # too many requests or calls at once: back off, dial again later
    AUTHENTICATION = "authentication"  # this service's credentials: stop dialing, raise an alarm
    MISCONFIGURED = "misconfigured"  # a caller number Twilio refuses: stop dialing, raise an alarm
    # The request never reached the carrier (no connection): back off, dial again later.
    UNREACHABLE = "unreachable"
    # The request may have reached the carrier (a timeout, a connection dropped mid-request),
    # which may be dialing: its callbacks will say; none within the lease, and the call failed.
    UNCONFIRMED = "unconfirmed"
    OTHER = "other"  # recorded verbatim; the call ends as failed and the retry rules apply


# Twilio's error codes (https://www.twilio.com/docs/api/errors) by what they mean here.
_INVALID_NUMBER_CODES = frozenset({"21211", "21214", "21217", "21401"})
_OPTED_OUT_CODES = frozenset({"21610"})
_THROTTLED_CODES = frozenset({"429", "20429", "10004"})
# 20003 authentication failed, 20005 account not active, 20006 access denied, 20008 test
# credentials where live ones are needed, 20401 unauthorized.
_AUTHENTICATION_CODES = frozenset({"20003", "20005", "20006", "20008", "20401"})
# 21210 'From' number not verified, 21212 invalid 'From' number, 21606 'From' not owned.
_MISCONFIGURED_CODES = frozenset({"21210", "21212", "21606"})


def refusal_kind(code: str | None, http_status: int | None = None) -> RefusalKind:
    """Classify a carrier error by Twilio's code, else by the HTTP status it came with."""
    if code in _INVALID_NUMBER_CODES:
        return RefusalKind.INVALID_NUMBER
    if code in _OPTED_OUT_CODES:
        return RefusalKind.OPTED_OUT
    if code in _THROTTLED_CODES or http_status == 429:
        return RefusalKind.THROTTLED
    if code in _AUTHENTICATION_CODES or http_status == 401:
        return RefusalKind.AUTHENTICATION
    if code in _MISCONFIGURED_CODES:
        return RefusalKind.MISCONFIGURED
    return RefusalKind.OTHER


class CarrierError(Exception):
    """The carrier refused a request. ``code`` is the carrier's own error code, verbatim;
    ``kind`` what it means for the dialer (by default, from the code)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retryable: bool = False,
        http_status: int | None = None,
        kind: RefusalKind | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.kind = kind or refusal_kind(code, http_status)
        self.retryable = retryable or self.kind in (RefusalKind.THROTTLED, RefusalKind.UNREACHABLE)


@runtime_checkable
class Carrier(Protocol):
    async def place_call(self, request: DialRequest) -> str:
        """Ask the network to dial; returns the carrier's call id (Twilio's CallSid)."""
        ...

    async def hang_up(self, carrier_sid: str) -> None:
        """End a call in any state (a queued or ringing call is cancelled)."""
        ...

    async def cancel(self, carrier_sid: str) -> None:
        """Cancel a call that is still queued or ringing; an answered call goes on."""
        ...

    async def leave_message(self, carrier_sid: str, text: str, language: str) -> None:
        """Speak ``text`` on an answered call (a machine, after its beep), then end the call."""
        ...

    async def aclose(self) -> None:
        """Release connections and stop background work."""
        ...
