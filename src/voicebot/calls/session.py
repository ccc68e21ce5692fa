"""One live call: the media stream, the dialog engine and the speech services, bound together.

Everything the engine hears becomes an event stepped through it at once, on the event loop:
marks coming back (``PromptFinished``), DTMF, the listener's partial text (barge-in) and finished
utterances, the no-input and call-length timers, and the end of the stream (``HungUp``). Its
actions run without waiting: prompts queue on the player, stored outcomes queue on the recorder.
``Hangup`` and ``Transfer`` wait until the prompts before them have played (their marks came
back), then ask the carrier to end the call; the carrier ends the stream with ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.calls import records
from voicebot.calls.dialogs import dialog_voice
from voicebot.calls.listener import (
    HearingEvent,
    PartialText,
    SpeechEnded,
    SpeechStarted,
    UtteranceListener,
)
from voicebot.calls.playback import PromptPlayer
from voicebot.calls.records import CallSetup
from voicebot.calls.services import CallServices
from voicebot.dialog import (
    Action,
    CallContext,
    CallStarted,
    CallState,
    Confirmation,
    Dialog,
    DialogRuntimeError,
    DtmfPressed,
    Event,
    Hangup,
    HungUp,
    Listen,
    MaxDurationReached,
    NoInput,
    OptOut,
    PromptFinished,
    RecordOutcome,
    Say,
    ScheduleCallBack,
    StopSpeaking,
    Transfer,
    Utterance,
    context_for,
    new_call,
    step,
)
from voicebot.domain.phones import mask_phone
from voicebot.metrics import TURN_LATENCY
from voicebot.speech.recognition import Recognizer, SpeechModelUnavailable
from voicebot.telephony.media import (
    Connected,
    Dtmf,
    InboundEvent,
    Media,
    MediaProtocolError,
    Start,
    Stop,
    parse_inbound,
)

log = logging.getLogger(__name__)

# After asking the carrier to hang up, how long to wait for its ``stop`` before closing.
_STOP_WAIT_SECONDS = 10.0
# How often a call waiting for answering-machine detection looks for the verdict.
_DETECTION_POLL_SECONDS = 0.25
# How long the prompts before a Hangup may take to come back before the call is ended anyway.
_CLOSING_GRACE_SECONDS = 60.0
# How long the call's end waits for its records to be stored before giving up on them, unless
# an opt-out or a call-back request is among them (see _Recorder).
_RECORDER_DRAIN_SECONDS = 10.0
# A write that fails on a database error is tried again after a pause that doubles each time.
_WRITE_FIRST_PAUSE_SECONDS = 0.2
_WRITE_MAX_PAUSE_SECONDS = 5.0
# How long a write may go on failing before it is given up: an outcome or the transcript...
_WRITE_GIVE_UP_SECONDS = 10.0
# ...and an opt-out or a call-back request, which the bot has promised the borrower.
_PROMISE_GIVE_UP_SECONDS = 300.0
# Errors a later attempt may not meet: the connection, the pool, a lock, a cancelled statement.
# An integrity error would only come again.
_TRANSIENT_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


class MediaTransport(Protocol):
    """The websocket, as the session needs it."""

    async def receive_text(self) -> str | None:
        """The next text frame; None once the socket has closed. Raises MediaProtocolError for a
        frame that is not text."""
        ...

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class StreamFailure(Exception):
    """The stream broke the protocol or dropped, or the call's own work failed: the call ends,
    with this recorded on it (``end_state`` tells the two apart in reports)."""

    def __init__(
        self, code: str, message: str, *, close_code: int = 1002, end_state: str = "stream_error"
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.close_code = close_code
        self.end_state = end_state

    @classmethod
    def internal(cls, code: str, exc: BaseException) -> StreamFailure:
        """Our side failed (a background task, a bug): only the exception's type is kept, since
        its message may quote what the borrower said or the contact's data."""
        return cls(code, type(exc).__name__, close_code=1011, end_state="internal_error")


@dataclass(slots=True)
class SessionStats:
    """What a call measured about itself, logged when it ends."""

    # From the end of the borrower's speech (as the stream's timestamps place it) to the first
    # frame of the answer sent.
    turn_latencies_ms: list[float] = field(default_factory=list)
    utterances: int = 0
    recognized: int = 0
    barge_ins: int = 0
    dtmf: int = 0
    frames_in: int = 0


@dataclass(frozen=True, slots=True)
class _Write:
    what: str  # for the log: "opt-out", "outcome", ...
    store: Callable[[AsyncSession], Awaitable[Any]]
    # An opt-out or a call-back request: the bot told the borrower it is done, and an opt-out
    # must be honoured whenever in the call it comes.
    promise: bool


class _Recorder:
    """Database writes of one call, in order, each in its own transaction, off the audio path.

    A write that meets a database error (a dropped connection, a lock, a cancelled statement) is
    tried again after a short pause. Outcomes and the transcript are given up after a few
    seconds of failures, and at the call's end after ``_RECORDER_DRAIN_SECONDS``; opt-outs and
    call-back requests are kept trying for minutes, and the call's end waits for them.
    """

    def __init__(self, services: CallServices, call_id: int) -> None:
        self._services = services
        self._call_id = call_id
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._promises = 0  # promise writes queued or being stored
        self._task = asyncio.create_task(self._run(), name=f"call-{call_id}-recorder")

    def submit(
        self, what: str, store: Callable[[AsyncSession], Awaitable[Any]], *, promise: bool = False
    ) -> None:
        if promise:
            self._promises += 1
        self._queue.put_nowait(_Write(what, store, promise))

    async def _run(self) -> None:
        while True:
            write = await self._queue.get()
            try:
                await self._store(write)
            finally:
                if write.promise:
                    self._promises -= 1
                self._queue.task_done()

    async def _store(self, write: _Write) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + (
            _PROMISE_GIVE_UP_SECONDS if write.promise else _WRITE_GIVE_UP_SECONDS
        )
        pause = _WRITE_FIRST_PAUSE_SECONDS
        failures = 0
        while True:
            try:
                async with self._services.sessionmaker() as session:
                    await write.store(session)
            except IntegrityError:
                log.exception("call %s: the %s was not stored", self._call_id, write.what)
                return
            except _TRANSIENT_ERRORS as exc:
                failures += 1
                if loop.time() + pause > give_up:
                    log.exception(
                        "call %s: the %s was not stored (%d attempts)",
                        self._call_id,
                        write.what,
                        failures,
                    )
                    return
                log.warning(
                    "call %s: storing the %s failed (%s); trying again in %.1f s",
                    self._call_id,
                    write.what,
                    type(exc).__name__,
                    pause,
                )
            except Exception:
                log.exception("call %s: the %s was not stored", self._call_id, write.what)
                return
            else:
                if failures:
                    log.info(
                        "call %s: the %s was stored after %d failed attempts",
                        self._call_id,
                        write.what,
                        failures,
                    )
                return
            await asyncio.sleep(pause)
            pause = min(2 * pause, _WRITE_MAX_PAUSE_SECONDS)

    async def drain(self) -> None:
        """Wait for the call's writes; past ``_RECORDER_DRAIN_SECONDS``, only while an opt-out or
        a call-back request is still among them (each is given up at its own deadline)."""
        try:
            async with asyncio.timeout(_RECORDER_DRAIN_SECONDS):
                await self._queue.join()
        except TimeoutError:
            unwritten = True
            if self._promises:
                log.warning(
                    "call %s: the call has ended; still storing %d opt-outs or call-backs",
                    self._call_id,
                    self._promises,
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_PROMISE_GIVE_UP_SECONDS):
                        await self._queue.join()
                        unwritten = False
            if unwritten:
                log.error("call %s: records still unwritten at the end of the call", self._call_id)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class CallSession:
    """Runs one call's conversation over its media stream, from ``start`` to the end."""

    def __init__(
        self,
        services: CallServices,
        setup: CallSetup,
        dialog: Dialog,
        start: Start,
        transport: MediaTransport,
        *,
        answered_by: str | None = None,
    ) -> None:
        self.services = services
        self.setup = setup
        self.dialog = dialog
        self.start = start
        self.transport = transport
        # Who answered, when the carrier said so as the stream started (synchronous detection);
        # None: a person, unless the campaign's asynchronous detection is still to report.
        self.answered_by = answered_by
        self.stats = SessionStats()
        self.state: CallState | None = None
        self.failure: StreamFailure | None = None
        self.conversed = False
        self._stream_started = datetime.now(UTC)
        self._speaking = False
        self._closing: Hangup | Transfer | None = None
        self._closing_since = 0.0
        self._hangup_requested = False
        self._stopped = False
        self._no_input: asyncio.TimerHandle | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._recorder: _Recorder | None = None
        self.player = PromptPlayer(
            self._send, start.stream_sid, services.synthesizer, dialog_voice(dialog)
        )
        self.listener = UtteranceListener(
            None,
            self._heard,
            vad=services.vad,
            preroll_ms=services.settings.media_preroll_ms,
        )
        self._finished = asyncio.Event()

    @property
    def call_id(self) -> int:
        return self.setup.call_id

    # Running

    async def run(self) -> None:
        """Hold the conversation until the stream ends; the call's records are written before
        this returns. Never raises for what the stream sends."""
        loop = asyncio.get_running_loop()
        self._recorder = _Recorder(self.services, self.call_id)
        recognizer_task = asyncio.create_task(self._recognizer(), name="recognizer")
        detection: asyncio.Task[None] | None = None
        try:
            try:
                context = context_for(self.dialog.script, self.setup.contact)
            except ValueError as exc:
                raise StreamFailure("contact_data", str(exc), close_code=1011) from None
            self.player.start()
            if self.answered_by is None and self.setup.machine_detection != "off":
                detection = asyncio.create_task(self._begin_after_detection(context))
            else:
                self._begin(context, self.answered_by or "human")
            limit = self.dialog.script.max_call_seconds
            self._timers.append(loop.call_later(limit, self._timeout))
            await self._read()
        except StreamFailure as failure:
            self.failure = failure
        except Exception as exc:
            log.exception("call %s: the conversation failed", self.call_id)
            self.failure = StreamFailure.internal("internal_error", exc)
        finally:
            await self._stop_background("recognizer", _cancelled(recognizer_task))
            if detection is not None:
                await self._stop_background("machine_detection", _cancelled(detection))
            await self._finish()

    async def _stop_background(self, name: str, stopping: Awaitable[None]) -> None:
        """Wait for one of the call's background tasks to stop. What it raised is logged and
        becomes the call's failure (unless another came first), never a reason to skip the rest
        of the call's ending: its transcript, outcomes and end state are still stored, and its
        socket closed."""
        try:
            await stopping
        except Exception as exc:
            log.error(
                "call %s: the %s failed (%s)", self.call_id, name, type(exc).__name__, exc_info=exc
            )
            if self.failure is None:
                self.failure = StreamFailure.internal(f"{name}_failed", exc)

    def _begin(self, context: CallContext, answered_by: str) -> None:
        """The dialog starts: its greeting, or for a machine its voicemail message."""
        self.state = new_call(self.dialog, context)
        machine = answered_by.startswith("machine") or answered_by == "fax"
        self._apply(CallStarted(at=self._now(), answered_by="machine" if machine else "human"))

    async def _begin_after_detection(self, context: CallContext) -> None:
        """Wait, listening to nothing, for the campaign's answering-machine detection. A person
        (or no verdict in time) starts the dialog; for a machine the carrier's webhook does
        what the campaign says (hang up, or leave the message) and the stream ends."""
        verdict = await self._machine_detection_verdict()
        if verdict is not None and (verdict.startswith("machine") or verdict == "fax"):
            log.info(
                "call %s: a machine answered; the carrier's webhook ends the call", self.call_id
            )
            return
        if not self._stopped:
            self._begin(context, "human")

    async def _machine_detection_verdict(self) -> str | None:
        """The carrier's verdict, or None when none could be read by the deadline.

        A read that fails (a connection lost, a pool or statement timeout) is no verdict yet:
        the next poll may get it, and past the deadline the call goes on as for a person, so a
        database blip never leaves the borrower listening to silence for the whole call.
        """
        wait = self.services.settings.media_machine_detection_wait_seconds
        deadline = asyncio.get_running_loop().time() + wait
        failed_reads = 0
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    try:
                        async with self.services.sessionmaker() as session:
                            verdict = await records.answered_by(session, self.call_id)
                    except Exception as exc:
                        failed_reads += 1
                        if failed_reads == 1:  # one line per call, not one per poll
                            log.warning(
                                "call %s: the machine-detection verdict could not be read (%s)",
                                self.call_id,
                                type(exc).__name__,
                            )
                        verdict = None
                    if verdict is not None:
                        return verdict
                    await asyncio.sleep(_DETECTION_POLL_SECONDS)
        except TimeoutError:
            if failed_reads:
                log.warning(
                    "call %s: no machine-detection verdict (%d reads failed): talking as to "
                    "a person",
                    self.call_id,
                    failed_reads,
                )
            return None

    async def _recognizer(self) -> None:
        """Open the call's recogniser (the model may still be loading) and start listening."""
        recognizer: Recognizer | None = None
        try:
            recognizer = await self.services.open_recognizer(self.dialog)
        except SpeechModelUnavailable as exc:
            log.warning("call %s: no speech recognition (%s); DTMF only", self.call_id, exc)
        except Exception:
            log.exception("call %s: the recogniser failed to open; DTMF only", self.call_id)
        self.listener.recognizer = recognizer
        self.listener.start()

    async def _read(self) -> None:
        while not self._stopped:
            try:
                text = await self.transport.receive_text()
            except MediaProtocolError as exc:
                raise StreamFailure("bad_frame", str(exc), close_code=1003) from None
            if text is None:
                if self._hangup_requested:
                    return  # we ended the call; the carrier closed without a stop
                raise StreamFailure("stream_dropped", "the socket closed before a stop message")
            try:
                event = parse_inbound(text)
            except MediaProtocolError as exc:
                raise StreamFailure("bad_message", str(exc), close_code=1007) from None
            self._dispatch(event)

    def _dispatch(self, event: InboundEvent) -> None:
        if isinstance(event, Connected | Start):
            kind = "connected" if isinstance(event, Connected) else "start"
            raise StreamFailure("out_of_order", f"{kind!r} after the stream had started")
        if event.stream_sid != self.start.stream_sid:
            raise StreamFailure("wrong_stream", "a message for another streamSid")
        if isinstance(event, Media):
            if event.track not in ("inbound", "inbound_track"):
                return  # both_tracks streams also carry what we sent
            offset = timedelta(milliseconds=event.timestamp_ms)
            if self.stats.frames_in == 0:
                # Timestamps count from the stream's start at the carrier: anchor them here.
                self._stream_started = self._now() - offset
            self.stats.frames_in += 1
            self.listener.push(event.payload, self._stream_started + offset)
        elif isinstance(event, Dtmf):
            self.stats.dtmf += 1
            log.debug("call %s pressed %s", self.call_id, event.digit)
            self._apply(DtmfPressed(at=self._now(), digit=event.digit))
        elif isinstance(event, Stop):
            self._stopped = True
            self._apply(HungUp(at=self._now()))
        else:  # a mark coming back
            prompt_id = self.player.mark_echoed(event.name)
            if prompt_id is None:
                raise StreamFailure("unknown_mark", f"mark {event.name!r} was never sent")
            self._apply(PromptFinished(at=self._now(), prompt_id=prompt_id))

    async def _finish(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._cancel_no_input()
        await self._stop_background("listener", self.listener.aclose())
        if self.state is not None and not self.state.ended:
            self._apply(HungUp(at=self._now()))
        await self._stop_background("player", self.player.aclose())
        failure = self.failure
        if failure is not None:
            log.warning(
                "call %s: stream ended: %s: %s", self.call_id, failure.code, failure.message
            )
            if not self._hangup_requested and not self._stopped:
                self._hang_up("the call failed")
        recorder = self._recorder
        if recorder is not None:
            if failure is not None:
                error, message = failure.code, failure.message
                recorder.submit(
                    "stream error",
                    lambda s: records.record_stream_error(s, self.call_id, error, message),
                )
            if self.state is not None:
                turns = self.state.turns
                end_state = failure.end_state if failure else (self.state.end_reason or "hung_up")
                recorder.submit(
                    "transcript",
                    lambda s: records.store_conversation_end(
                        s, self.call_id, turns=turns, end_state=end_state, conversed=self.conversed
                    ),
                )
            await recorder.drain()
        with contextlib.suppress(Exception):
            close_code = failure.close_code if failure else 1000
            await self.transport.close(close_code, failure.code if failure else "call ended")
        self._finished.set()
        latencies = sorted(self.stats.turn_latencies_ms)
        log.info(
            "call %s ended (%s): %d utterances, %d recognised, %d barge-ins, %d DTMF; "
            "median answer %s ms after speech",
            self.call_id,
            self.state.end_reason if self.state else "not started",
            self.stats.utterances,
            self.stats.recognized,
            self.stats.barge_ins,
            self.stats.dtmf,
            round(latencies[len(latencies) // 2]) if latencies else "-",
        )

    # The engine

    def _apply(self, event: Event) -> tuple[Action, ...]:
        if self.state is None:
            return ()
        self.state, actions = step(self.state, event)
        for action in actions:
            self._execute(action)
        self._after_step()
        return actions

    def _execute(self, action: Action) -> None:
        assert self.state is not None and self._recorder is not None
        if isinstance(action, Say):
            self.player.play(action.prompt_id, action.text, self._state_of(action.prompt_id))
        elif isinstance(action, StopSpeaking):
            self.stats.barge_ins += 1
            self.player.clear()
        elif isinstance(action, Listen):
            self._speculate()
        elif isinstance(action, RecordOutcome):
            outcome, now = action.outcome, self._now()
            self._recorder.submit(
                "outcome", lambda s: records.store_outcome(s, self.setup, outcome, now=now)
            )
            if isinstance(outcome, Confirmation) and "identity" in outcome.fields:
                self.conversed = True
                self._recorder.submit(
                    "conversation mark", lambda s: records.mark_conversed(s, self.call_id)
                )
        elif isinstance(action, ScheduleCallBack):
            at, now = action.at, self._now()
            self._recorder.submit(
                "call-back request",
                lambda s: records.store_callback_request(s, self.setup, at=at, now=now),
                promise=True,
            )
        elif isinstance(action, OptOut):
            reason, now = action.reason, self._now()
            self._recorder.submit(
                "opt-out",
                lambda s: records.store_opt_out(s, self.setup, reason=reason, now=now),
                promise=True,
            )
        elif isinstance(action, Transfer):
            # The carrier port has no transfer yet: the call closes after its prompt, and the
            # transcript and end state say where it should have gone.
            log.info("call %s: transfer to %s requested", self.call_id, mask_phone(action.number))
            self._close_after_prompts(action)
        else:
            self._close_after_prompts(action)

    def _after_step(self) -> None:
        state = self.state
        assert state is not None
        if state.ended:
            self._cancel_no_input()
            if self._closing is not None and not self._hangup_requested:
                overdue = time.monotonic() - self._closing_since > _CLOSING_GRACE_SECONDS
                if not state.playing or overdue:
                    self._hang_up(f"the dialog ended: {state.end_reason}")
            return
        listening = state.listen is not None and not state.playing and not self._speaking
        if listening and self._no_input is None:
            assert state.listen is not None
            loop = asyncio.get_running_loop()
            self._no_input = loop.call_later(state.listen.no_input_seconds, self._silence)
        elif not listening:
            self._cancel_no_input()

    def _close_after_prompts(self, action: Hangup | Transfer) -> None:
        if self._closing is None:
            self._closing = action
            self._closing_since = time.monotonic()
            loop = asyncio.get_running_loop()
            self._timers.append(loop.call_later(_CLOSING_GRACE_SECONDS + 0.1, self._after_step))

    def _speculate(self) -> None:
        """Render what the next turn is likely to say (each DTMF answer's prompts, the no-input
        reprompt) while the borrower talks: the engine is pure, so a trial step costs nothing."""
        state = self.state
        if state is None or state.listen is None:
            return
        now = self._now()
        trials: list[Event] = [DtmfPressed(at=now, digit=d) for d in state.listen.dtmf]
        trials.append(NoInput(at=now))
        texts: list[str] = []
        for trial in trials:
            try:
                _, actions = step(state, trial)
            except (DialogRuntimeError, ValueError):
                continue
            texts.extend(a.text for a in actions if isinstance(a, Say))
        self.player.prefetch(texts)

    # What the listener heard

    def _heard(self, event: HearingEvent) -> None:
        state = self.state
        if state is None or self._stopped:
            return
        if isinstance(event, SpeechStarted):
            self._speaking = True
            self._cancel_no_input()
        elif isinstance(event, PartialText):
            if state.playing:
                self._apply(Utterance(at=self._now(), text=event.text, partial=True))
        else:
            self._speaking = False
            self._utterance(event)
            if self.state is not None:
                self._after_step()

    def _utterance(self, event: SpeechEnded) -> None:
        # What was said is the transcript's, never the log's: it may hold numbers and names.
        log.debug(
            "call %s heard %d characters (confidence %.2f%s)",
            self.call_id,
            len(event.text),
            event.confidence,
            ", unknown words" if event.unknown else "",
        )
        if not event.text and not event.unknown:
            return  # a noise the recogniser found no word in
        self.stats.utterances += 1
        if event.text:
            self.stats.recognized += 1
        actions = self._apply(
            Utterance(
                at=event.ended_at,
                text=event.text,
                confidence=event.confidence if event.text else 0.0,
                started_at=event.started_at,
            )
        )
        answer = next((a for a in actions if isinstance(a, Say)), None)
        if answer is not None:
            ended = event.ended_at

            def sent() -> None:
                latency = (datetime.now(UTC) - ended).total_seconds() * 1000
                self.stats.turn_latencies_ms.append(latency)
                TURN_LATENCY.observe(latency / 1000)
                log.debug(
                    "call %s: answer %d ms after the end of speech (%d ms after detection)",
                    self.call_id,
                    latency,
                    1000 * (time.monotonic() - event.detected),
                )

            self.player.on_first_frame(answer.prompt_id, sent)

    # Timers

    def _silence(self) -> None:
        self._no_input = None
        self._apply(NoInput(at=self._now()))

    def _timeout(self) -> None:
        self._apply(MaxDurationReached(at=self._now()))

    def _cancel_no_input(self) -> None:
        if self._no_input is not None:
            self._no_input.cancel()
            self._no_input = None

    # The carrier

    def _hang_up(self, why: str) -> None:
        self._hangup_requested = True
        sid = self.start.call_sid
        carrier = self.services.carrier

        async def hang_up() -> None:
            try:
                await carrier.hang_up(sid)
            except Exception:
                log.exception("call %s: the carrier did not hang up", self.call_id)
            if self._finished.is_set():
                return
            # The carrier ends the stream with ``stop``; if it does not, close it ourselves.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._finished.wait(), _STOP_WAIT_SECONDS)
            if not self._finished.is_set():
                self._stopped = True
                with contextlib.suppress(Exception):
                    await self.transport.close(1000, "call ended")

        log.info("call %s: hanging up (%s)", self.call_id, why)
        self.services.spawn(hang_up(), name=f"call-{self.call_id}-hangup")

    # Helpers

    async def _send(self, text: str) -> None:
        await self.transport.send_text(text)

    def _state_of(self, prompt_id: int) -> str | None:
        assert self.state is not None
        for turn in reversed(self.state.turns):
            if turn.prompt_id == prompt_id:
                return turn.state
        return None

    @staticmethod
    def _now() -> datetime:
        return datetime.now(UTC)


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel the task and wait for it to end; raises what it raised before it was cancelled."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
