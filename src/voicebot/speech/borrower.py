"""A simulated borrower's voice: eSpeak NG lines as the 20 ms μ-law frames a phone line carries.

Used by the simulated carrier and the speech tests. The borrower speaks with the dialog
language's eSpeak voice at another pitch and pace than the bot, so transcripts and recordings
tell the two apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from voicebot.speech.audio import FRAME_MS, MULAW_FRAME_BYTES, MULAW_SILENCE, mulaw_frames
from voicebot.speech.synthesis import Synthesizer, Voice, voice_for_language

BORROWER_RATE_WPM: Final = 160
BORROWER_PITCH: Final = 35


def borrower_voice(language: str) -> Voice:
    """The borrower's voice for a dialog language (``zh-CN``, ``en-US``, ``ko-KR``)."""
    return voice_for_language(language, rate=BORROWER_RATE_WPM, pitch=BORROWER_PITCH)


def silence_frames(milliseconds: int) -> list[bytes]:
    """Whole 20 ms frames of μ-law silence covering ``milliseconds`` (rounded up)."""
    count = -(-milliseconds // FRAME_MS)
    return [bytes([MULAW_SILENCE]) * MULAW_FRAME_BYTES] * count


@dataclass
class BorrowerSpeaker:
    """Speaks a borrower's lines in one language; renders are cached like the bot's prompts."""

    language: str
    synthesizer: Synthesizer = field(default_factory=Synthesizer)
    voice: Voice | None = None

    def __post_init__(self) -> None:
        if self.voice is None:
            self.voice = borrower_voice(self.language)

    async def frames(
        self, text: str, *, lead_silence_ms: int = 0, tail_silence_ms: int = 0
    ) -> list[bytes]:
        """The line as 8 kHz μ-law 20 ms frames, optionally framed by silence."""
        voice = self.voice or borrower_voice(self.language)
        mulaw = await self.synthesizer.to_mulaw_8k(text, voice)
        return (
            silence_frames(lead_silence_ms) + mulaw_frames(mulaw) + silence_frames(tail_silence_ms)
        )
