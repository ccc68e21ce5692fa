"""The simulated phone tells its own stalls from the bot's underruns: a gap in the bot's audio
that the phone's stalled event loop accounts for is the phone's delay, not audio sent late."""

from __future__ import annotations

import asyncio
import time

from voicebot.config import Settings
from voicebot.telephony.simulated_voice import SimulatedVoice


async def test_stalled_time_is_measured_within_a_window() -> None:
    voice = SimulatedVoice(Settings())
    voice._stalls.extend([(10.0, 10.3), (11.0, 11.05)])
    voice._monitor_due = 20.0
    assert abs(voice.stalled_seconds(9.0, 12.0) - 0.35) < 1e-9
    assert abs(voice.stalled_seconds(10.1, 10.2) - 0.1) < 1e-9
    assert voice.stalled_seconds(10.5, 10.9) == 0.0
    # The monitor overdue: a stall still going on counts up to the end of the window.
    assert abs(voice.stalled_seconds(19.0, 21.0) - 1.0) < 1e-9
    await voice.aclose()


async def test_the_monitor_notes_a_blocked_event_loop() -> None:
    voice = SimulatedVoice(Settings())
    voice._monitor = asyncio.create_task(voice._watch_loop())
    await asyncio.sleep(0.05)
    before = time.monotonic()
    time.sleep(0.2)  # noqa: ASYNC251  # blocks the loop on purpose: an overloaded process
    after = time.monotonic()
    await asyncio.sleep(0.05)
    assert voice.stalled_seconds(before, after) > 0.15
    assert voice.stalled_seconds(after + 0.01, after + 0.04) == 0.0
    await voice.aclose()
