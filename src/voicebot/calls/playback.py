"""The bot's side of the audio: prompts out as 20 ms μ-law media messages, a mark after each.

The carrier buffers what it is sent and plays it in real time, echoing a mark once the audio
before it has played; so a prompt is sent as fast as it is rendered (its first sentence goes out
while the next is still being rendered) and the echoed mark is what says it was heard. ``clear``
(barge-in) drops the carrier's buffer, and ours: prompts not yet sent are forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from voicebot.calls.prompts import sentences
from voicebot.speech.audio import mulaw_frames
from voicebot.speech.synthesis import Synthesizer, Voice
from voicebot.telephony.media import clear_message, mark_message, media_message

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
_MARK_SEPARATOR = "."


def mark_name(prompt_id: int, state: str | None) -> str:
    """``p<prompt id>.<dialog state>``: the state rides along so logs (and the simulated
    borrower) can tell which question a prompt belongs to."""
    return f"p{prompt_id}{_MARK_SEPARATOR}{state or ''}"


@dataclass(frozen=True, slots=True)
class _Prompt:
    prompt_id: int
    text: str
    state: str | None


class _Clear:
    pass


class PromptPlayer:
    """Sends prompts in order on one task: the only writer of the stream once the call runs."""

    def __init__(
        self,
        send: Send,
        stream_sid: str,
        synthesizer: Synthesizer,
        voice: Voice,
    ) -> None:
        self._send = send
        self._stream_sid = stream_sid
        self._synthesizer = synthesizer
        self._voice = voice
        self._watch: dict[int, Callable[[], None]] = {}
        self._queue: asyncio.Queue[_Prompt | _Clear] = asyncio.Queue()
        self._epoch = 0  # raised by clear(): whatever was being sent stops
        self._task: asyncio.Task[None] | None = None
        self._prefetch: asyncio.Task[None] | None = None
        self._prefetch_texts: list[str] = []
        self.marks_sent: dict[str, int] = {}  # mark name -> prompt id, until echoed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="prompt-player")

    def play(self, prompt_id: int, text: str, state: str | None) -> None:
        self._queue.put_nowait(_Prompt(prompt_id, text, state))

    def clear(self) -> None:
        """Barge-in: stop the prompt being sent, forget queued ones, and tell the carrier."""
        self._epoch += 1
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_Clear())

    def prefetch(self, texts: list[str]) -> None:
        """Render prompts likely to be said next, while the borrower is talking."""
        fresh = [s for text in texts for s in sentences(text)]
        fresh = [s for s in fresh if not self._synthesizer.cached(s, self._voice)]
        if not fresh:
            return
        self._prefetch_texts = fresh
        if self._prefetch is None or self._prefetch.done():
            self._prefetch = asyncio.create_task(self._render_ahead(), name="prompt-prefetch")

    def on_first_frame(self, prompt_id: int, notify: Callable[[], None]) -> None:
        """Call ``notify`` right after the prompt's first frame has been sent (latency figures)."""
        self._watch[prompt_id] = notify

    def mark_echoed(self, name: str) -> int | None:
        """The prompt a returning mark closes (None when we never sent that mark)."""
        return self.marks_sent.pop(name, None)

    async def aclose(self) -> None:
        for task in (self._task, self._prefetch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _render_ahead(self) -> None:
        while self._prefetch_texts:
            text = self._prefetch_texts.pop(0)
            try:
                await self._synthesizer.to_mulaw_8k(text, self._voice)
            except Exception as exc:  # a guess that fails costs nothing; the real render reports
                log.debug("prefetch of a prompt failed: %r", exc)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, _Clear):
                    await self._send(clear_message(self._stream_sid))
                else:
                    await self._play(item)
            except Exception as exc:
                # The reader sees the socket close and ends the call; nothing more can be sent.
                log.debug("prompt player stopped: %r", exc)
                return

    async def _play(self, prompt: _Prompt) -> None:
        epoch = self._epoch
        for sentence in sentences(prompt.text):
            audio = await self._synthesizer.to_mulaw_8k(sentence, self._voice)
            for frame in mulaw_frames(audio):
                if self._epoch != epoch:
                    return
                await self._send(media_message(self._stream_sid, frame))
                notify = self._watch.pop(prompt.prompt_id, None)
                if notify is not None:
                    notify()
        if self._epoch != epoch:
            return
        name = mark_name(prompt.prompt_id, prompt.state)
        self.marks_sent[name] = prompt.prompt_id
        await self._send(mark_message(self._stream_sid, name))
