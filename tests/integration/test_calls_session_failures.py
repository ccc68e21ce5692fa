"""When the call's own work fails, the call still ends properly: a recogniser that breaks, a
database read that fails while the bot waits for answering-machine detection, an opt-out whose
write fails or waits on a lock. The session runs as the app runs it (real dialog, synthesiser
and database, SQLite and PostgreSQL); only the websocket and the failing recogniser are
stand-ins, and database errors are raised inside the engine itself or come from a real lock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.integration.calls_support import (
    ACCOUNT_SID,
    KO_DIALOG,
    RecordingCarrier,
    call_settings,
    seed_call,
    shared_speech,
)
from voicebot.calls import records
from voicebot.calls import session as session_module
from voicebot.calls.services import CallServices, build_call_services
from voicebot.calls.session import CallSession
from voicebot.db.models import Call, CallBack, Campaign, DoNotCall
from voicebot.speech.recognition import PartialRecognition, Recognition, SpeechModelUnavailable
from voicebot.telephony.media import InboundFrames, Start, parse_inbound

CALL_SID = "CA" + "7c" * 16


class QueueTransport:
    """The websocket as the session sees it: the test sends what Twilio would, and sees what
    the bot sent and how the socket was closed."""

    def __init__(self) -> None:
        self.inbound: asyncio.Queue[str | None] = asyncio.Queue()
        self.spoke = asyncio.Event()  # the bot sent audio
        self.closed: tuple[int, str] | None = None

    async def receive_text(self) -> str | None:
        return await self.inbound.get()

    async def send_text(self, text: str) -> None:
        if json.loads(text)["event"] == "media":
            self.spoke.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


class BrokenRecognizer:
    """A decoder that fails on its first piece of audio (the priming, as the greeting plays)."""

    async def accept_mulaw_pieces(
        self, pieces: list[bytes], *, finish: bool = False
    ) -> list[Recognition | PartialRecognition]:
        raise RuntimeError("decoder failed")


class StubSpeechModels:
    """Hands out the given recogniser; without one, no model is installed (the call goes on
    by DTMF, as it does for a language without a model)."""

    def __init__(self, recognizer: BrokenRecognizer | None) -> None:
        self._recognizer = recognizer

    async def recognizer(self, language: str, grammar: list[str]) -> BrokenRecognizer:
        if self._recognizer is None:
            raise SpeechModelUnavailable(language)
        return self._recognizer


def _services(
    db_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    recognizer: BrokenRecognizer | None = None,
    **settings: Any,
) -> CallServices:
    _, synthesizer = shared_speech()
    return build_call_services(
        call_settings(db_url, **settings),
        sessionmaker,
        RecordingCarrier(),  # type: ignore[arg-type]  # duck-typed: the carrier calls used
        speech_models=StubSpeechModels(recognizer),  # type: ignore[arg-type]  # only recognizer()
        synthesizer=synthesizer,
    )


async def _session(
    services: CallServices, call_id: int, transport: QueueTransport
) -> tuple[CallSession, InboundFrames]:
    async with services.sessionmaker() as session:
        setup = await records.load_setup(session, call_id)
    assert setup is not None
    frames = InboundFrames("MZ" + CALL_SID[2:], CALL_SID, ACCOUNT_SID)
    frames.connected()
    start = parse_inbound(frames.start({"call_id": str(call_id)}))
    assert isinstance(start, Start)
    dialog = await services.dialogs.get(KO_DIALOG)
    return CallSession(services, setup, dialog, start, transport), frames


async def _hang_up_after_the_greeting(
    call: CallSession, frames: InboundFrames, transport: QueueTransport
) -> None:
    """Run the call until the bot speaks, then hang up as the borrower; the call must end by
    itself, without raising."""
    running = asyncio.create_task(call.run())
    try:
        await asyncio.wait_for(transport.spoke.wait(), 20)
    finally:
        await transport.inbound.put(frames.stop())
        await asyncio.wait_for(running, 20)


async def _call(sessionmaker: async_sessionmaker[AsyncSession], call_id: int) -> Call:
    async with sessionmaker() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        return call


async def test_a_failed_recogniser_still_ends_the_call_with_its_transcript(
    db_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    services = _services(db_url, sessionmaker, BrokenRecognizer())
    call_id = await seed_call(sessionmaker, e164="+821055560001", carrier_sid=CALL_SID)
    transport = QueueTransport()
    call, frames = await _session(services, call_id, transport)

    await _hang_up_after_the_greeting(call, frames, transport)
    await services.aclose()

    assert transport.closed == (1011, "listener_failed")
    stored = await _call(sessionmaker, call_id)
    assert stored.end_state == "internal_error"
    assert stored.stream_error == "listener_failed: RuntimeError"
    async with sessionmaker() as session:
        turns = await records.transcript(session, call_id)
    assert turns and turns[0].speaker == "bot"
    assert any("listener failed (RuntimeError)" in r.getMessage() for r in caplog.records)
    assert isinstance(services.carrier, RecordingCarrier)
    assert services.carrier.hung_up == []  # the borrower had hung up already


class VerdictReadFailures:
    """Reads of the machine-detection verdict fail inside the engine, as over a lost connection,
    while ``remaining`` is above zero; ``failed`` is set once one has."""

    def __init__(self) -> None:
        self.remaining = 0
        self.failed = asyncio.Event()

    def before_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if self.remaining > 0 and statement.lstrip().startswith("SELECT calls.answered_by"):
            self.remaining -= 1
            self.failed.set()
            raise OperationalError(statement, parameters, ConnectionError("connection lost"))


@pytest.fixture
def verdict_reads(engine: AsyncEngine) -> Iterator[VerdictReadFailures]:
    failures = VerdictReadFailures()
    event.listen(engine.sync_engine, "before_cursor_execute", failures.before_execute)
    yield failures
    event.remove(engine.sync_engine, "before_cursor_execute", failures.before_execute)


async def _with_machine_detection(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    call_id = await seed_call(sessionmaker, e164="+821055560002", carrier_sid=CALL_SID)
    async with sessionmaker() as session:
        await session.execute(update(Campaign).values(machine_detection="Enable"))
        await session.commit()
    return call_id


async def test_a_failed_verdict_read_does_not_stop_the_wait_for_machine_detection(
    db_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    verdict_reads: VerdictReadFailures,
) -> None:
    services = _services(db_url, sessionmaker, media_machine_detection_wait_seconds=60.0)
    call_id = await _with_machine_detection(sessionmaker)
    transport = QueueTransport()
    call, frames = await _session(services, call_id, transport)
    verdict_reads.remaining = 1
    running = asyncio.create_task(call.run())
    await asyncio.wait_for(verdict_reads.failed.wait(), 10)
    async with sessionmaker() as session:
        await session.execute(update(Call).values(answered_by="human"))
        await session.commit()

    # The verdict is read at the next poll: the borrower hears the greeting long before the
    # 60 s deadline.
    try:
        await asyncio.wait_for(transport.spoke.wait(), 10)
    finally:
        await transport.inbound.put(frames.stop())
        await asyncio.wait_for(running, 20)
        await services.aclose()
    assert transport.closed == (1000, "call ended")
    stored = await _call(sessionmaker, call_id)
    assert stored.stream_error is None and stored.end_state is not None


async def test_the_dialog_starts_as_for_a_person_when_no_verdict_can_be_read(
    db_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    verdict_reads: VerdictReadFailures,
) -> None:
    services = _services(db_url, sessionmaker, media_machine_detection_wait_seconds=1.0)
    call_id = await _with_machine_detection(sessionmaker)
    transport = QueueTransport()
    call, frames = await _session(services, call_id, transport)
    verdict_reads.remaining = 1_000_000

    # Every read fails: once the wait (1 s here) is over, the bot talks as to a person.
    await _hang_up_after_the_greeting(call, frames, transport)
    await services.aclose()

    assert transport.closed == (1000, "call ended")
    stored = await _call(sessionmaker, call_id)
    assert stored.stream_error is None and stored.end_state is not None


class FailFirstOptOutWrite:
    """The first attempt to put a number on the do-not-call list fails inside the engine, as
    over a connection lost mid-call."""

    def __init__(self) -> None:
        self.failed = 0

    def before_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if not self.failed and statement.lstrip().startswith("INSERT INTO do_not_call"):
            self.failed += 1
            raise OperationalError(statement, parameters, ConnectionError("connection lost"))


async def _opt_out_and_hang_up(services: CallServices, call_id: int) -> None:
    """The borrower hears the greeting, presses 9 (do not call me again) and hangs up."""
    transport = QueueTransport()
    call, frames = await _session(services, call_id, transport)
    running = asyncio.create_task(call.run())
    try:
        await asyncio.wait_for(transport.spoke.wait(), 20)
        await transport.inbound.put(frames.dtmf("9"))
    finally:
        await transport.inbound.put(frames.stop())
        await asyncio.wait_for(running, 60)
        await services.aclose()


async def _opted_out(sessionmaker: async_sessionmaker[AsyncSession], e164: str) -> bool:
    async with sessionmaker() as session:
        listed = await session.get(DoNotCall, e164)
        pending = await session.scalar(
            select(func.count()).select_from(CallBack).where(CallBack.status == "pending")
        )
    return listed is not None and pending == 0


async def test_an_opt_out_survives_a_failed_write(
    db_url: str, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    e164 = "+821055560003"
    call_id = await seed_call(sessionmaker, e164=e164, carrier_sid=CALL_SID, extra_pending=True)
    failure = FailFirstOptOutWrite()
    event.listen(engine.sync_engine, "before_cursor_execute", failure.before_execute)
    try:
        await _opt_out_and_hang_up(_services(db_url, sessionmaker), call_id)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", failure.before_execute)
    assert failure.failed == 1
    assert await _opted_out(sessionmaker, e164)


async def test_an_opt_out_waits_for_a_locked_table_at_the_end_of_the_call(
    db_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another transaction holds the do-not-call list locked for longer than the call's records
    may take at its end: the opt-out is stored once the lock is released, not given up."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite's writers fail at once on a lock (the test above covers a failure)")
    monkeypatch.setattr(session_module, "_RECORDER_DRAIN_SECONDS", 0.5)
    e164 = "+821055560004"
    call_id = await seed_call(sessionmaker, e164=e164, carrier_sid=CALL_SID, extra_pending=True)
    locker = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        locking = locker.transaction()
        await locking.start()
        await locker.execute("LOCK TABLE do_not_call IN ACCESS EXCLUSIVE MODE")

        async def release_later() -> None:
            await asyncio.sleep(2.0)
            await locking.rollback()

        release = asyncio.create_task(release_later())
        await _opt_out_and_hang_up(_services(db_url, sessionmaker), call_id)
        await release
    finally:
        await locker.close()
    assert await _opted_out(sessionmaker, e164)
