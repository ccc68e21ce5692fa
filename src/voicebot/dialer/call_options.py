"""A campaign's carrier-side settings for its calls, and the caller number each dial shows."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from voicebot.db.models import Campaign
from voicebot.domain.campaigns import CallerIdMode, MachineDetection
from voicebot.telephony.carrier import CallOptions

log = logging.getLogger(__name__)


def call_options_for(campaign: Campaign) -> CallOptions:
    """The stored settings as CallOptions; a value the API would refuse falls back to the
    default (logged), so one bad row cannot stop the dialer."""
    try:
        detection = MachineDetection(campaign.machine_detection)
    except ValueError:
        log.error("campaign %s: unknown machine_detection; detection off", campaign.id)
        detection = MachineDetection.OFF
    return CallOptions(
        ring_timeout_seconds=campaign.ring_timeout_seconds,
        time_limit_seconds=campaign.time_limit_seconds,
        machine_detection=detection,
        record=bool(campaign.record_calls),
    )


def pick_caller(numbers: Sequence[str], to: str, turn: int, mode: str) -> str | None:
    """The caller number for a dial to ``to``: the pool in turn, or (``region``) the one sharing
    the longest prefix with ``to`` beyond its country code (area code, mobile prefix), the pool
    in turn among equals, and in turn over the whole pool when none shares the country."""
    if not numbers:
        return None
    if mode == CallerIdMode.REGION.value:
        country = _country_prefix(to)
        scored = [(_shared_prefix(n, to), n) for n in numbers if n.startswith(country)]
        if scored:
            best = max(score for score, _ in scored)
            matching = [n for score, n in scored if score == best]
            return matching[turn % len(matching)]
    return numbers[turn % len(numbers)]


def _country_prefix(e164: str) -> str:
    import phonenumbers

    try:
        return "+" + str(phonenumbers.parse(e164).country_code)
    except phonenumbers.NumberParseException:
        return e164[:2]


def _shared_prefix(a: str, b: str) -> int:
    shared = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        shared += 1
    return shared
