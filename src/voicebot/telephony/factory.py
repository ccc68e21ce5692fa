"""Builds the carrier the settings name."""

from __future__ import annotations

from voicebot.config import Settings
from voicebot.telephony.carrier import Carrier
from voicebot.telephony.simulated import SimulatedCarrier


def build_carrier(settings: Settings) -> Carrier:
    """The carrier for ``settings.carrier``; each adapter owns its connections until ``aclose``."""
    if settings.carrier == "simulated":
        if settings.simulated_voice:
            from voicebot.telephony.simulated_voice import SimulatedVoice

            return SimulatedCarrier(settings, voice=SimulatedVoice(settings))
        return SimulatedCarrier(settings)
    if settings.carrier == "twilio":
        from voicebot.telephony.twilio import TwilioCarrier

        return TwilioCarrier(settings)
    raise ValueError(f"unknown carrier {settings.carrier!r}")
