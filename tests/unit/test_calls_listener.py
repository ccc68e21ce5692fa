"""The listener: endpointing, pre-roll, fixed decoding slices, the flush and the priming, on
synthetic audio and a recogniser that records what it is fed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import numpy as np

from voicebot.calls.listener import (
    HearingEvent,
    PartialText,
    SpeechEnded,
    SpeechStarted,
    UtteranceListener,
)
from voicebot.speech.audio import MULAW_FRAME_BYTES, VadSettings, mulaw_encode
from voicebot.speech.recognition import PartialRecognition, Recognition

START = datetime(2024, 12, 11, 1, 0, tzinfo=UTC)
SILENCE = b"\xff" * MULAW_FRAME_BYTES


def tone(milliseconds: int) -> list[bytes]:
    """A 440 Hz tone at about -12 dBFS, as 20 ms μ-law frames."""
    t = np.arange(8 * milliseconds) / 8000
    pcm = (0.35 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    audio = mulaw_encode(pcm)
    return [audio[i : i + MULAW_FRAME_BYTES] for i in range(0, len(audio), MULAW_FRAME_BYTES)]


class RecordingRecognizer:
    """Says "네" once it has heard speech; remembers the size of every piece it decoded."""

    def __init__(self) -> None:
        self.fed: list[int] = []  # bytes per piece fed
        self.batches: list[int] = []  # pieces per trip to the recogniser
        self.finishes = 0
        self.heard_speech = False

    async def accept_mulaw_pieces(
        self, pieces: list[bytes], *, finish: bool = False
    ) -> list[Recognition | PartialRecognition]:
        self.batches.append(len(pieces))
        results: list[Recognition | PartialRecognition] = []
        for data in pieces:
            self.fed.append(len(data))
            self.heard_speech = self.heard_speech or any(b < 0x70 for b in data)
            results.append(PartialRecognition("네" if self.heard_speech else ""))
        if finish:
            results.append(self._finish())
        return results

    def _finish(self) -> Recognition:
        self.finishes += 1
        text = "네" if self.heard_speech else ""
        self.heard_speech = False
        return Recognition(
            text=text, words=(), confidence=0.9, unknown=False, audio_seconds=0, decode_seconds=0
        )


async def _listen(
    frames: list[bytes], recognizer: RecordingRecognizer | None, *, paced: bool = False
) -> list[HearingEvent]:
    """Push the frames at once (the listener catches up), or ``paced``: one at a time, the
    listener keeping up."""
    events: list[HearingEvent] = []
    listener = UtteranceListener(
        recognizer,  # type: ignore[arg-type]  # duck-typed: what the listener calls
        events.append,
        vad=VadSettings(hangover_ms=160),
        preroll_ms=100,
        slice_ms=60,
        flush_ms=300,
        prime_ms=600,
    )
    listener.start()
    # One media message of several frames, then single frames: both are cut into 20 ms frames.
    listener.push(b"".join(frames[:5]), START)
    for index, frame in enumerate(frames[5:], start=5):
        listener.push(frame, START + timedelta(milliseconds=20 * index))
        if paced:
            await asyncio.sleep(0.001)
    for _ in range(200):
        await asyncio.sleep(0.005)
        if listener.backlog_frames == 0 and any(isinstance(e, SpeechEnded) for e in events):
            break
    await listener.aclose()
    return events


async def test_an_utterance_is_endpointed_where_the_speech_is() -> None:
    frames = [SILENCE] * 25 + tone(600) + [SILENCE] * 25  # speech from 500 to 1100 ms
    events = await _listen(frames, None)
    started = [e for e in events if isinstance(e, SpeechStarted)]
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(started) == 1 and len(ended) == 1
    assert abs((started[0].at - START) / timedelta(milliseconds=1) - 500) <= 40
    assert abs((ended[0].ended_at - START) / timedelta(milliseconds=1) - 1100) <= 40
    assert ended[0].started_at == started[0].at
    assert ended[0].text == "" and not ended[0].unknown  # no recogniser: nothing recognised


async def test_the_recogniser_hears_speech_with_its_preroll_in_fixed_slices() -> None:
    recognizer = RecordingRecognizer()
    frames = [SILENCE] * 25 + tone(600) + [SILENCE] * 25
    events = await _listen(frames, recognizer)
    slice_bytes = 3 * MULAW_FRAME_BYTES
    # Primed with 600 ms of silence and finished before the call's audio.
    assert recognizer.fed[:10] == [slice_bytes] * 10
    assert recognizer.finishes == 2
    speech = recognizer.fed[10:]
    # Slices while speaking, then one last piece: the rest, plus 300 ms of silence to flush.
    assert set(speech[:-1]) == {slice_bytes}
    assert speech[-1] > 300 * 8
    fed_ms = sum(speech) / 8
    # The pre-roll (the 100 ms before the frame that started speech, its third: 60 ms of them
    # silence), the tone, the 160 ms hangover and the 300 ms flush.
    assert fed_ms == 60 + 600 + 160 + 300
    assert [e.text for e in events if isinstance(e, SpeechEnded)] == ["네"]
    # Everything queued before the listener ran: after the priming, one trip to the recogniser
    # decodes every slice and closes the utterance (no partial text: it is over already).
    assert recognizer.batches == [10, len(speech)]
    assert not [e for e in events if isinstance(e, PartialText)]
    # Silence alone never reaches the recogniser.
    quiet = RecordingRecognizer()
    assert not [e for e in await _listen([SILENCE] * 60, quiet) if isinstance(e, SpeechEnded)]
    assert sum(quiet.fed) == 600 * 8  # only the priming


async def test_a_listener_keeping_up_decodes_slice_by_slice_and_reports_partial_text() -> None:
    caught_up = RecordingRecognizer()
    frames = [SILENCE] * 25 + tone(600) + [SILENCE] * 25
    await _listen(frames, caught_up)
    paced = RecordingRecognizer()
    events = await _listen(frames, paced, paced=True)
    # The same audio, cut in the same places, whether the listener kept up or caught up.
    assert paced.fed == caught_up.fed
    assert len(paced.batches) > 10 and paced.batches.count(1) >= 10  # slices one by one
    assert [e.text for e in events if isinstance(e, PartialText)] == ["네"]
    assert [e.text for e in events if isinstance(e, SpeechEnded)] == ["네"]
