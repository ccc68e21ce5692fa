"""The simulated carrier's voice: what Twilio does with an answered call's audio, and a borrower.

For an answered call it fetches the answer URL (a signed POST, as Twilio does), reads the TwiML,
opens the ``<Stream>`` websocket through the real server and speaks Twilio's side of the
media-stream protocol: ``connected``, ``start`` with the ``<Parameter>``s, then a 20 ms μ-law
``media`` frame every 20 ms, in real time, for as long as the call lasts (silence when the
borrower says nothing). The bot's audio is buffered and "played" in real time: a mark is echoed
when the audio sent before it has played, ``clear`` drops the buffer and echoes the pending marks
at once, as Twilio does.

The borrower is a :class:`~voicebot.telephony.voice_personas.VoicePersona`. Each time the bot
finishes a turn (its last mark came back and no audio followed for a moment) the persona answers
for the dialog state the last mark named: a line synthesised by eSpeak NG in the dialog's language
(the ``language`` parameter), a key press, or hanging up; it may also talk over a prompt. It
answers after a pause (0.3 s plus up to 0.4 s, different on every turn), as people do.

Every conversation leaves a :class:`ConversationReport`: per borrower turn, the time from the end
of its speech to the first bot audio frame received (turn latency), and audio underruns (the bot's
audio running dry in the middle of a prompt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from voicebot.config import Settings
from voicebot.domain.phones import mask_phone
from voicebot.speech.audio import (
    FRAME_MS,
    MULAW_FRAME_BYTES,
    MULAW_SILENCE,
    frame_dbfs,
    mulaw_decode,
)
from voicebot.speech.borrower import BorrowerSpeaker
from voicebot.speech.synthesis import Synthesizer
from voicebot.telephony.carrier import DialRequest
from voicebot.telephony.media import Clear, InboundFrames, Mark, Media, parse_outbound
from voicebot.telephony.signatures import SIGNATURE_HEADER, TwilioSignature
from voicebot.telephony.voice_personas import (
    HangUp,
    Interrupt,
    Line,
    Press,
    Speak,
    VoicePersona,
    choose_persona,
)

log = logging.getLogger(__name__)

FRAME_SECONDS = FRAME_MS / 1000
_SILENCE = bytes([MULAW_SILENCE]) * MULAW_FRAME_BYTES
# A frame at least this loud is speech when the persona's line is measured (end of speech).
_VOICED_DBFS = -50.0
_MAX_REPORTS = 10_000
# The event-loop monitor's tick, and how many stalls it remembers.
_MONITOR_SECONDS = 0.01
_MAX_STALLS = 4096


@dataclass(slots=True)
class BorrowerTurn:
    """One thing the persona did, and how fast the bot answered it."""

    state: str
    kind: Literal["speech", "dtmf", "barge_in"]
    text: str
    ended: float = 0.0  # monotonic: end of speech (or the key press)
    latency_ms: float | None = None  # to the first bot frame received after ``ended``
    # The bot sent audio while the borrower was still speaking (it answered part of the line):
    # no latency is measured for such a turn.
    overlapped: bool = False


@dataclass(slots=True)
class ConversationReport:
    call_sid: str
    call_id: int
    persona: str = ""
    language: str = ""
    turns: list[BorrowerTurn] = field(default_factory=list)
    bot_frames: int = 0
    underruns: int = 0  # times the bot's audio ran dry inside a prompt
    underrun_ms: float = 0.0
    # Gaps seen while this process's own event loop was stalled (frames of one burst handled
    # apart): the phone's delay, not audio the bot failed to send in time.
    stall_gaps: int = 0
    clears: int = 0
    marks_echoed: int = 0
    late_frames: int = 0  # our own frames sent late (an overloaded process, not the bot)
    ended_by: Literal["bot", "borrower", "error", "none"] = "none"
    error: str | None = None
    seconds: float = 0.0

    @property
    def latencies_ms(self) -> list[float]:
        return [t.latency_ms for t in self.turns if t.latency_ms is not None and t.kind == "speech"]


@dataclass(frozen=True, slots=True)
class StreamInstructions:
    """What the answer TwiML asked for: a stream URL and its parameters, or a hang-up."""

    url: str | None
    parameters: dict[str, str]


def read_twiml(text: str) -> StreamInstructions:
    """The ``<Connect><Stream>`` in an answer document (``url`` None when there is none)."""
    root = ElementTree.fromstring(text)
    stream = root.find("./Connect/Stream")
    if stream is None:
        return StreamInstructions(None, {})
    parameters = {
        p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter") if p.get("name")
    }
    return StreamInstructions(stream.get("url"), parameters)


def voice_persona_name(persona: str) -> str:
    """``answers:promise`` → ``promise``; a bare carrier persona names no voice persona."""
    return persona.partition(":")[2].strip().lower().replace("-", "_")


class SimulatedVoice:
    """Talks answered simulated calls through; one instance serves every call of a carrier."""

    def __init__(
        self,
        settings: Settings,
        *,
        http_client: httpx.AsyncClient | None = None,
        synthesizer: Synthesizer | None = None,
        reaction_seconds: float = 0.3,
        reaction_jitter_seconds: float = 0.4,
        turn_gap_seconds: float = 0.25,
        max_call_seconds: float = 600.0,
        time_scale: float = 1.0,
        on_report: Callable[[ConversationReport], None] | None = None,
    ) -> None:
        """``time_scale`` > 1 runs the phone's clock faster (audio sent and played that many
        times faster than real time): for tests, which want the protocol, not the wait."""
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._settings = settings
        self._signature = TwilioSignature(settings.twilio_auth_token.get_secret_value())
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(timeout=httpx.Timeout(15.0))
        self._synthesizer = synthesizer or Synthesizer()
        self._speakers: dict[str, BorrowerSpeaker] = {}
        self._lines: dict[tuple[str, str], tuple[list[bytes], int]] = {}
        self.reaction_seconds = reaction_seconds
        self.reaction_jitter_seconds = reaction_jitter_seconds
        self.turn_gap_seconds = turn_gap_seconds
        self.max_call_seconds = max_call_seconds
        self.time_scale = time_scale
        self.on_report = on_report
        self.reports: deque[ConversationReport] = deque(maxlen=_MAX_REPORTS)
        self._stalls: deque[tuple[float, float]] = deque(maxlen=_MAX_STALLS)
        self._monitor: asyncio.Task[None] | None = None
        self._monitor_due = float("inf")  # when the monitor should next wake

    def stalled_seconds(self, start: float, end: float) -> float:
        """How long this process's event loop was stalled (running late) within [start, end]."""
        stalls = [*self._stalls]
        if self._monitor_due + FRAME_SECONDS / 2 < end:
            # The monitor is overdue: the stall still going on has not been noted yet.
            stalls.append((self._monitor_due, end))
        return sum(max(0.0, min(e, end) - max(s, start)) for s, e in stalls if e > start)

    async def _watch_loop(self) -> None:
        """Note when the event loop runs late: what this process receives meanwhile is handled
        late, and gaps it then sees in the bot's audio are its own doing."""
        tick = _MONITOR_SECONDS
        while True:
            before = time.monotonic()
            self._monitor_due = before + tick
            await asyncio.sleep(tick)
            woke = time.monotonic()
            if woke - before > tick + FRAME_SECONDS / 2:
                self._stalls.append((before + tick, woke))

    async def converse(self, call_sid: str, request: DialRequest, answered_by: str) -> None:
        """Hold one answered call's conversation; returns when either side has hung up. If the
        task is cancelled (the service hung up through the carrier), the stream is stopped first,
        as Twilio does."""
        report = ConversationReport(call_sid=call_sid, call_id=request.call_id)
        started = time.monotonic()
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.create_task(self._watch_loop(), name="voice-loop-monitor")
        try:
            instructions = await self._answer(call_sid, request, answered_by)
            if instructions.url is None:
                report.ended_by = "bot"
                return
            language = instructions.parameters.get("language", "")
            named = voice_persona_name(request.metadata.get("persona", ""))
            choice = choose_persona(language, named, request.to)
            if choice.persona is None:
                log.warning("call %s: %s; the borrower is silent", request.call_id, choice.problem)
            report.persona = choice.persona.name if choice.persona else ""
            report.language = language
            call = _VoiceCall(self, call_sid, request, instructions, choice.persona, report)
            await call.run()
        except (httpx.HTTPError, OSError, ConnectionClosed, ElementTree.ParseError) as exc:
            report.ended_by = "error"
            report.error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "simulated voice for call %s (to %s) failed: %s",
                request.call_id,
                mask_phone(request.to),
                report.error,
            )
        finally:
            report.seconds = time.monotonic() - started
            self.reports.append(report)
            if self.on_report is not None:
                self.on_report(report)

    async def line_audio(self, language: str, text: str) -> tuple[list[bytes], int]:
        """A line as 20 ms frames, and the index of its last voiced frame (its end of speech)."""
        key = (language, text)
        cached = self._lines.get(key)
        if cached is not None:
            return cached
        speaker = self._speakers.get(language)
        if speaker is None:
            speaker = self._speakers[language] = BorrowerSpeaker(language, self._synthesizer)
        frames = await speaker.frames(text)
        voiced = [i for i, f in enumerate(frames) if frame_dbfs(mulaw_decode(f)) > _VOICED_DBFS]
        line = (frames, voiced[-1] if voiced else len(frames) - 1)
        self._lines[key] = line
        return line

    async def aclose(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        if self._owns_client:
            await self._client.aclose()

    async def _answer(
        self, call_sid: str, request: DialRequest, answered_by: str
    ) -> StreamInstructions:
        caller = request.from_ or "+15005550006"
        fields = {
            "AccountSid": self._settings.twilio_account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "CallStatus": "in-progress",
            "Called": request.to,
            "Caller": caller,
            "Direction": "outbound-api",
            "From": caller,
            "To": request.to,
        }
        if answered_by:
            fields["AnsweredBy"] = answered_by
        headers = {SIGNATURE_HEADER: self._signature.sign(request.answer_url, fields)}
        response = await self._client.post(request.answer_url, data=fields, headers=headers)
        response.raise_for_status()
        return read_twiml(response.text)


class _VoiceCall:
    """One call's stream, both directions, and the persona's turns."""

    def __init__(
        self,
        voice: SimulatedVoice,
        call_sid: str,
        request: DialRequest,
        instructions: StreamInstructions,
        persona: VoicePersona | None,
        report: ConversationReport,
    ) -> None:
        assert instructions.url is not None
        self.voice = voice
        self.request = request
        self.url = instructions.url
        self.parameters = instructions.parameters
        self.persona = persona
        self.report = report
        self.frames = InboundFrames(
            "MZ" + uuid.uuid4().hex, call_sid, voice._settings.twilio_account_sid
        )
        self.language = instructions.parameters.get("language", "")
        self.mouth: deque[bytes] = deque()  # frames the borrower is saying, in order
        self.last_voiced: int = -1  # frames left in the mouth when speech ends (see _send_loop)
        self.speaking: BorrowerTurn | None = None
        self.awaiting: BorrowerTurn | None = None  # a turn whose answer has not started yet
        self.visits: dict[str, int] = {}
        self.play_until = 0.0  # monotonic: when the buffered bot audio will have played
        self.prompt_open = False  # bot media received since the last mark: a prompt is arriving
        self.pending_marks: deque[tuple[float, str]] = deque()  # (plays at, name)
        self.last_state = ""
        self.turn_serial = 0  # raised by every bot frame and mark: a turn ends when it holds
        self.ws: ClientConnection | None = None
        self.done = asyncio.Event()
        self.hung_up = False
        self.wake = asyncio.Event()
        self.background: set[asyncio.Task[None]] = set()
        self.frame_seconds = FRAME_SECONDS / voice.time_scale
        # People take their time to answer, each differently: calls do not stay in lockstep.
        self.random = random.Random(call_sid)

    async def run(self) -> None:
        async with connect(
            self.url,
            compression=None,
            proxy=None,
            ping_interval=None,
            open_timeout=10,
            close_timeout=5,
        ) as ws:
            self.ws = ws
            tasks: list[asyncio.Task[None]] = []
            try:
                await ws.send(self.frames.connected())
                await ws.send(self.frames.start(self.parameters))
                tasks = [
                    asyncio.create_task(self._send_loop(), name="voice-send"),
                    asyncio.create_task(self._receive_loop(), name="voice-receive"),
                    asyncio.create_task(self._mark_loop(), name="voice-marks"),
                ]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.voice.max_call_seconds):
                        await self.done.wait()
                if not self.done.is_set():
                    self.report.ended_by = "borrower"
            finally:
                # Finished, or cancelled because the service hung up through the carrier:
                # either way Twilio ends the stream with ``stop`` before closing the socket.
                for task in (*tasks, *self.background):
                    task.cancel()
                await asyncio.gather(*tasks, *self.background, return_exceptions=True)
                if not self.hung_up and self.report.ended_by == "none":
                    self.report.ended_by = "bot"
                await asyncio.shield(self._hang_up())

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _hang_up(self) -> None:
        if self.hung_up or self.ws is None:
            return
        self.hung_up = True
        with contextlib.suppress(ConnectionClosed, OSError):
            await self.ws.send(self.frames.stop())
            await self.ws.close()

    # Our side: the borrower's microphone, one frame every 20 ms

    async def _send_loop(self) -> None:
        assert self.ws is not None
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            now = loop.time()
            if now < next_at:
                await asyncio.sleep(next_at - now)
            elif now - next_at > self.frame_seconds:
                self.report.late_frames += 1
            next_at += self.frame_seconds
            frame = self.mouth.popleft() if self.mouth else _SILENCE
            await self.ws.send(self.frames.media(frame))
            turn = self.speaking
            if turn is not None and len(self.mouth) <= self.last_voiced:
                # That was the line's last voiced frame: its speech has ended.
                self.speaking = None
                turn.ended = time.monotonic()
                self.awaiting = turn
                log.debug("call %s: borrower stopped speaking", self.request.call_id)

    async def say(self, state: str, kind: Literal["speech", "barge_in"], text: str) -> None:
        frames, last = await self.voice.line_audio(self.language, text)
        turn = BorrowerTurn(state=state, kind=kind, text=text)
        self.report.turns.append(turn)
        self.mouth.clear()
        self.mouth.extend(frames)
        self.last_voiced = len(frames) - 1 - last  # frames still queued after the last voiced one
        self.speaking = turn
        self.awaiting = None

    async def press(self, state: str, digit: str) -> None:
        assert self.ws is not None
        turn = BorrowerTurn(state=state, kind="dtmf", text=digit)
        self.report.turns.append(turn)
        await self.ws.send(self.frames.dtmf(digit))
        turn.ended = time.monotonic()
        self.awaiting = turn

    # Their side: the bot's audio, marks and clears

    async def _receive_loop(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                self._received(parse_outbound(message))
        except ConnectionClosed:
            pass
        # The service closed the stream: the call is over.
        if self.report.ended_by == "none":
            self.report.ended_by = "bot"
        self.hung_up = True
        self.done.set()

    def _received(self, event: Media | Mark | Clear) -> None:
        now = time.monotonic()
        if isinstance(event, Media):
            self.report.bot_frames += 1
            self.turn_serial += 1
            if self.play_until < now:
                gap = now - self.play_until
                if self.prompt_open and gap >= self.frame_seconds:
                    # A gap the phone's own stalls account for is not the bot's.
                    stalled = self.voice.stalled_seconds(self.play_until, now)
                    if stalled >= gap - self.frame_seconds:
                        self.report.stall_gaps += 1
                    else:
                        self.report.underruns += 1
                        self.report.underrun_ms += 1000 * gap
                self.play_until = now
            self.play_until += len(event.payload) / 8000 / self.voice.time_scale
            self.prompt_open = True
            if self.speaking is not None:
                self.speaking.overlapped = True
            awaiting = self.awaiting
            if awaiting is not None:
                if not awaiting.overlapped:
                    awaiting.latency_ms = 1000 * (now - awaiting.ended)
                    call_id, latency = self.request.call_id, awaiting.latency_ms
                    log.debug("call %s: bot answered in %.0f ms", call_id, latency)
                self.awaiting = None
        elif isinstance(event, Mark):
            self.turn_serial += 1
            self.prompt_open = False
            self.pending_marks.append((max(self.play_until, now), event.name))
            self.wake.set()
            self._maybe_interrupt(event.name)
        else:
            self.report.clears += 1
            self.play_until = now
            self.prompt_open = False
            marks, self.pending_marks = list(self.pending_marks), deque()
            for _, name in marks:
                self._echo(name)

    async def _mark_loop(self) -> None:
        """Echo each mark when the audio before it has played; answer when the bot's turn ends."""
        while True:
            if not self.pending_marks:
                self.wake.clear()
                await self.wake.wait()
                continue
            plays_at, name = self.pending_marks[0]
            wait = plays_at - time.monotonic()
            if wait > 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), wait)
                continue
            self.pending_marks.popleft()
            self._echo(name)

    def _echo(self, name: str) -> None:
        if self.ws is None or self.hung_up:
            return
        self.report.marks_echoed += 1
        self.last_state = _state_of(name)
        self.spawn(self._send(self.frames.mark(name)))
        if not self.pending_marks:
            serial = self.turn_serial
            asyncio.get_running_loop().call_later(
                self.voice.turn_gap_seconds / self.voice.time_scale, self._turn_ended, serial
            )

    async def _send(self, text: str) -> None:
        if self.ws is None or self.hung_up:
            return
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(text)

    # The borrower

    def _turn_ended(self, serial: int) -> None:
        if serial != self.turn_serial or self.pending_marks or self.hung_up:
            return  # the bot said more since
        if self.speaking is not None or self.awaiting is not None:
            # Still talking, or the bot has not answered what was just said (a barge-in only
            # cleared the prompt it interrupted): its answer is the next turn.
            return
        state = self.last_state
        line = self._next_line(state)
        if line is None or isinstance(line, Interrupt):
            return
        self.spawn(self._act(state, line))

    def _maybe_interrupt(self, name: str) -> None:
        state = _state_of(name)
        if self.persona is None or self.speaking is not None:
            return
        line = self.persona.line(state, self.visits.get(state, 0))
        if isinstance(line, Interrupt):
            self.visits[state] = self.visits.get(state, 0) + 1
            self.last_state = state
            self.spawn(self._act(state, line, delay=line.after_ms / 1000))

    def _next_line(self, state: str) -> Line | None:
        if self.persona is None:
            return None
        visit = self.visits.get(state, 0)
        self.visits[state] = visit + 1
        return self.persona.line(state, visit)

    async def _act(self, state: str, line: Line, *, delay: float | None = None) -> None:
        try:
            if delay is None:
                jitter = self.random.uniform(0.0, self.voice.reaction_jitter_seconds)
                pause = self.voice.reaction_seconds + jitter
            else:
                pause = delay
            await asyncio.sleep(pause / self.voice.time_scale)
            if self.hung_up:
                return
            if isinstance(line, Speak):
                await self.say(state, "speech", line.text)
            elif isinstance(line, Interrupt):
                await self.say(state, "barge_in", line.text)
            elif isinstance(line, Press):
                await self.press(state, line.digit)
            elif isinstance(line, HangUp):
                self.report.ended_by = "borrower"
                await self._hang_up()
                self.done.set()
        except Exception as exc:
            log.warning("simulated borrower failed on call %s: %r", self.request.call_id, exc)


def _state_of(mark: str) -> str:
    """The dialog state a mark names: the service calls its marks ``p<prompt id>.<state>``."""
    return mark.split(".", 1)[1] if "." in mark else ""
