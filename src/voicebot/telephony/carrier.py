"""The Carrier port: what the dialer needs from a telephone network.

A carrier places and hangs up calls; everything that happens to a call afterwards arrives through
webhooks (``POST /webhooks/twilio/status``), exactly as with Twilio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


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


class CarrierError(Exception):
    """The carrier refused a request. ``code`` is the carrier's own error code, verbatim."""

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


@runtime_checkable
class Carrier(Protocol):
    async def place_call(self, request: DialRequest) -> str:
        """Ask the network to dial; returns the carrier's call id (Twilio's CallSid)."""
        ...

    async def hang_up(self, carrier_sid: str) -> None:
        """End a call in any state (a queued or ringing call is cancelled)."""
        ...

    async def aclose(self) -> None:
        """Release connections and stop background work."""
        ...
