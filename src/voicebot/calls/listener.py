"""The borrower's side of the audio: an energy endpointer in front of one warm recogniser.

Frames arrive from the stream in 20 ms μ-law pieces. The endpointer (VAD) decides where speech
starts and ends; only speech, with a short pre-roll from before its start, is decoded, so a
silent line costs almost nothing. The recogniser lives for the whole call with one grammar, so its
feature pipeline stays adapted to the caller's voice (a new or re-grammared recogniser starts cold
and loses the first syllables). Decoding runs in the speech executor, in fixed slices of audio;
slices that queued up while it was busy go in one trip, so a loaded machine does not make a call's
backlog grow for as long as the borrower speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from voicebot.metrics import RECOGNITION_RTF
from voicebot.speech.audio import (
    FRAME_MS,
    MULAW_FRAME_BYTES,
    MULAW_SILENCE,
    MulawFramer,
    VadEvent,
    VadSettings,
    VoiceActivityDetector,
    mulaw_decode,
)
from voicebot.speech.recognition import Recognition, Recognizer

log = logging.getLogger(__name__)

_FRAME = timedelta(milliseconds=FRAME_MS)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    at: datetime  # where in the call's audio speech began


@dataclass(frozen=True, slots=True)
class PartialText:
    """The recogniser's running guess while the borrower speaks (drives barge-in)."""

    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """An utterance, endpointed and decoded. ``text`` is empty when nothing was recognised.

    ``ended_at`` is the end of speech in the call's audio (before the endpointer's hangover);
    ``detected`` is the monotonic instant the utterance was complete, for latency figures.
    """

    text: str
    confidence: float
    unknown: bool
    started_at: datetime
    ended_at: datetime
    detected: float


HearingEvent = SpeechStarted | PartialText | SpeechEnded


class UtteranceListener:
    """Turns the stream's audio into hearing events, passed to ``on_event`` as they happen.

    Without a recogniser (no model for the dialog's language) it still endpoints speech, and every
    utterance ends with empty text: the call goes on by DTMF.
    """

    def __init__(
        self,
        recognizer: Recognizer | None,
        on_event: Callable[[HearingEvent], None],
        *,
        vad: VadSettings,
        preroll_ms: int,
        slice_ms: int = 60,
        flush_ms: int = 300,
        prime_ms: int = 600,
    ) -> None:
        self.recognizer = recognizer
        self._on_event = on_event
        self._vad = VoiceActivityDetector(vad)
        self._hangover = timedelta(milliseconds=vad.hangover_ms)
        self._lead = timedelta(milliseconds=vad.start_ms)
        self._preroll: deque[bytes] = deque(maxlen=max(1, preroll_ms // FRAME_MS))
        self._use_preroll = preroll_ms > 0
        self._slice = max(1, slice_ms // FRAME_MS)
        silence = bytes([MULAW_SILENCE]) * MULAW_FRAME_BYTES
        self._flush = [silence] * (flush_ms // FRAME_MS)
        self._prime = [silence] * (prime_ms // FRAME_MS)
        self._framer = MulawFramer()
        self._queue: asyncio.Queue[tuple[bytes, datetime]] = asyncio.Queue()
        self._pending: list[bytes] = []
        self._slices: list[bytes] = []  # endpointed audio waiting for the recogniser
        self._finals: list[Recognition] = []
        self._partial = ""
        self._speech_started: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def backlog_frames(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="listener")

    def push(self, payload: bytes, at: datetime) -> None:
        """Audio from one media message; ``at`` is where it starts in the call's audio."""
        carried = self._framer.pending
        for index, frame in enumerate(self._framer.push(payload)):
            offset = index * MULAW_FRAME_BYTES - carried
            self._queue.put_nowait((frame, at + timedelta(milliseconds=offset / 8)))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        if self.recognizer is not None and self._prime:
            # The decoder's first chunk costs several times a later one (the network's left
            # context, the i-vector): pay it now, while the bot's greeting plays, not at the
            # borrower's first answer.
            pieces = [
                b"".join(self._prime[start : start + self._slice])
                for start in range(0, len(self._prime), self._slice)
            ]
            await self.recognizer.accept_mulaw_pieces(pieces, finish=True)
        while True:
            frame, at = await self._queue.get()
            ended = self._frame(frame, at)
            # Frames that queued up while the last decode ran are endpointed at once and their
            # slices decoded in one trip to the speech executor: on a busy machine, one trip per
            # slice would let the backlog grow for as long as the borrower speaks.
            while ended is None and not self._queue.empty():
                frame, at = self._queue.get_nowait()
                ended = self._frame(frame, at)
            await self._decode(ended)

    def _frame(self, frame: bytes, at: datetime) -> datetime | None:
        """Endpoint one frame; slices of speech go to ``_slices``. The end of speech, when the
        frame ends an utterance (its audio, flush included, is then the last slice)."""
        event = self._vad.process(mulaw_decode(frame))
        if event is VadEvent.SPEECH_START:
            self._speech_started = at + _FRAME - self._lead
            if self._use_preroll:
                self._pending.extend(self._preroll)
            self._preroll.clear()
            self._pending.append(frame)
            self._partial = ""
            self._on_event(SpeechStarted(self._speech_started))
        elif event is VadEvent.SPEECH_END:
            self._pending.append(frame)
            # The decoder lags the audio by its acoustic context: silence after the utterance
            # pushes its last words through, instead of leaving them to start the next one.
            # One piece, not a slice at a time: at the end of an utterance every cut is work.
            self._slices.append(b"".join([*self._pending, *self._flush]))
            self._pending = []
            return at + _FRAME - self._hangover
        elif self._vad.in_speech:
            self._pending.append(frame)
        else:
            self._preroll.append(frame)
        # Fixed slices, never "whatever has queued up": Vosk's result depends a little on how
        # the audio is cut, and it should not depend on how loaded the process is.
        while len(self._pending) >= self._slice:
            self._slices.append(b"".join(self._pending[: self._slice]))
            del self._pending[: self._slice]
        return None

    async def _decode(self, ended: datetime | None) -> None:
        """Decode the slices endpointed so far (and close the utterance if it ``ended``)."""
        slices, self._slices = self._slices, []
        if self.recognizer is not None and (slices or ended is not None):
            results = await self.recognizer.accept_mulaw_pieces(slices, finish=ended is not None)
            partial = ""
            for result in results:
                if isinstance(result, Recognition):
                    self._finals.append(result)
                    if result.audio_seconds > 0:
                        RECOGNITION_RTF.observe(result.decode_seconds / result.audio_seconds)
                    partial = ""
                elif result.text:
                    partial = result.text
            if ended is None and partial and partial != self._partial:
                self._partial = partial
                self._on_event(PartialText(partial, datetime.now(UTC)))
        if ended is not None:
            self._end(ended)

    def _end(self, ended_at: datetime) -> None:
        finals, self._finals = self._finals, []
        words = [w for r in finals for w in r.words]
        spoken = [w.confidence for r in finals for w in r.words if not _is_unknown(w.word)]
        started = self._speech_started or ended_at
        self._speech_started = None
        self._partial = ""
        self._on_event(
            SpeechEnded(
                text=" ".join(r.text for r in finals if r.text),
                confidence=sum(spoken) / len(spoken) if spoken else 0.0,
                unknown=any(r.unknown for r in finals) or (bool(words) and not spoken),
                started_at=min(started, ended_at),
                ended_at=ended_at,
                detected=time.monotonic(),
            )
        )


def _is_unknown(word: str) -> bool:
    return word.startswith(("[", "<")) and word.endswith(("]", ">"))
