"""Concurrent simulated calls through the whole real stack, in Korean, on this machine.

    .venv/bin/python bench/calls.py [--json] [--levels 10,20,30,40,50,60,70,80,100]
                                    [--level-seconds 60]

The service runs in its own process, as in production: the real app under uvicorn (uvloop) with
its dialer, the answer webhook and the media websocket, Vosk with the Korean model, eSpeak NG
through pyttsx3, PostgreSQL when it is reachable (else SQLite). Its carrier is the simulated one;
the phones themselves, like Twilio's side of the media streams, run in this process: for every
call the service's carrier asks this process to hold the conversation, which fetches the signed
answer URL, opens the media stream and lets a scripted Korean borrower talk in real time (a 20 ms
frame every 20 ms; the bot's audio played at real-time pace, marks echoed as played).

Each level holds that many calls at once for a minute: a campaign with that concurrency limit
and three borrowers per slot, created and started over the ``/v1`` API; the dialer dials at 5
calls per second and dials the next borrower as a call ends, so the level ramps up and then
stays full, calls at every stage of the dialog. At the end of the window the campaign is
cancelled and the borrowers still talking hang up. Per level: calls held at once, turn latency
(end of the borrower's speech to the first bot audio frame received, measured by the phone),
audio underruns (the bot's audio running dry inside a prompt; a gap the phones' own stalled event
loop accounts for is counted apart, as ``phone_stall_gaps``), calls whose stream failed, the
service's memory and CPU, and the CPU the rest of the machine used meanwhile. A level passes
when it held all its calls at once, no call failed or had an underrun, and the p95 turn latency
is at most 500 ms; levels step up until one fails.
Intent accuracy compares what each scripted line means in its dialog state (intent, amount,
date, by the dialog's own matchers) with what the transcript says was recognised; lines that
carry none of these (a complaint's wording) cannot be judged so and are counted apart.

The last line is JSON: ``max_concurrent_calls``, ``p50_turn_latency_ms`` and
``p95_turn_latency_ms`` at 10 calls, ``intent_accuracy``, ``rss_per_call_mb`` (the service's
peak memory at the largest level run, less its memory warmed up and idle, per call), and
per-level details.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import psutil
import uvicorn
from pydantic import SecretStr
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from voicebot.config import Settings
from voicebot.db.apikeys import create_api_key
from voicebot.db.models import Base, Call, TranscriptTurn
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.dialog import Dialog, load_dialog
from voicebot.dialog.understanding import best_intent
from voicebot.domain.types import Role
from voicebot.telephony.carrier import DialRequest
from voicebot.telephony.simulated_voice import ConversationReport, SimulatedVoice
from voicebot.telephony.voice_personas import DEFAULT_MIX, KOREAN, Interrupt, Speak

DIALOG_ID = "car_loan_followup.ko-KR"
LANGUAGE = "ko-KR"
ADMIN_URL = os.environ.get(
    "VOICEBOT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AUTH_TOKEN = "bench-calls-token"
SEOUL = ZoneInfo("Asia/Seoul")
P95_LIMIT_MS = 500.0
# Dials per second: Twilio's default account limit is 1; 5 ramps a level of 50 up in 10 s.
CALLS_PER_SECOND = 5.0
SAMPLE_SECONDS = 0.25
# Calls dialed this close to a level's end may still be ringing or answering when it ends.
LATE_DIAL_SECONDS = 5.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# The service's side: its own process, its carrier asking the phones here to talk


class RemoteVoice:
    """The simulated carrier's voice, held by the phones process (the bench's main process)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0))

    async def converse(self, call_sid: str, request: DialRequest, answered_by: str) -> None:
        body = {
            "call_sid": call_sid,
            "call_id": request.call_id,
            "to": request.to,
            "from": request.from_,
            "answer_url": request.answer_url,
            "status_callback_url": request.status_callback_url,
            "metadata": dict(request.metadata),
            "answered_by": answered_by,
        }
        try:
            await self._client.post(f"{self._url}/converse", json=body)
        except asyncio.CancelledError:
            # The service hung up through the carrier: the phone ends its side of the stream.
            with contextlib.suppress(httpx.HTTPError):
                await asyncio.shield(
                    self._client.post(f"{self._url}/hangup", json={"call_sid": call_sid})
                )
            raise

    async def aclose(self) -> None:
        await self._client.aclose()


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_service(database_url: str, port: int, voice_url: str) -> None:
    """The service process: the app with its dialer, warmed up, until SIGTERM."""
    from voicebot.app import create_app
    from voicebot.telephony.simulated import SimulatedCarrier

    if os.environ.get("BENCH_DEBUG"):
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(asctime)s service %(message)s")
        logging.getLogger("voicebot.calls.session").setLevel(logging.DEBUG)

    settings = Settings(
        environment="development",
        database_url=database_url,
        database_pool_size=20,
        public_base_url=f"http://127.0.0.1:{port}",
        twilio_auth_token=SecretStr(AUTH_TOKEN),
        dialer_enabled=True,
        dialer_id="bench-calls",
        dialer_poll_seconds=0.2,
        carrier_calls_per_second=CALLS_PER_SECOND,
        simulated_ring_seconds=0.3,
    )
    carrier = SimulatedCarrier(settings, voice=RemoteVoice(voice_url))
    app = create_app(settings, carrier=carrier)
    server = _Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="websockets-sansio",
        )
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    await app.state.calls.warm_up([DIALOG_ID])
    print("READY", flush=True)
    await stop.wait()
    server.should_exit = True
    await task
    await carrier.aclose()


# The phones' side: this process


class Phones:
    """Holds the conversations the service's carrier asks for, and counts them."""

    def __init__(self, voice: SimulatedVoice) -> None:
        self.voice = voice
        self.calls: dict[str, asyncio.Task[None]] = {}
        self.most_at_once = 0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/converse", self.converse, methods=["POST"]),
                Route("/hangup", self.hang_up, methods=["POST"]),
            ]
        )

    async def converse(self, request: Request) -> JSONResponse:
        body = await request.json()
        dial = DialRequest(
            call_id=int(body["call_id"]),
            to=body["to"],
            from_=body["from"],
            answer_url=body["answer_url"],
            status_callback_url=body["status_callback_url"],
            metadata=body["metadata"],
        )
        sid = body["call_sid"]
        task = asyncio.create_task(self.voice.converse(sid, dial, body["answered_by"]))
        self.calls[sid] = task
        self.most_at_once = max(self.most_at_once, len(self.calls))
        try:
            await asyncio.wait({task})
        finally:
            self.calls.pop(sid, None)
        return JSONResponse({})

    async def hang_up(self, request: Request) -> JSONResponse:
        task = self.calls.get((await request.json())["call_sid"])
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        return JSONResponse({})

    async def hang_up_all(self) -> None:
        """The borrowers still talking hang up (the end of a level's window)."""
        tasks = list(self.calls.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


@dataclass
class LevelResult:
    calls: int
    held_at_once: int = 0
    dialed: int = 0
    completed: int = 0
    window_end: float = 0.0
    failed: list[str] = field(default_factory=list)
    underrun_calls: int = 0
    underruns: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    dtmf_latencies_ms: list[float] = field(default_factory=list)
    late_frames: int = 0
    stall_gaps: int = 0
    hung_up_unconnected: int = 0  # dialed at the window's end, hung up before the stream opened
    rss_before_mb: float = 0.0  # the service's memory when the level started
    rss_idle_mb: float = 0.0  # the service's memory warmed up, before any call of the run
    rss_peak_mb: float = 0.0
    service_cpu_percent: float = 0.0
    phones_cpu_percent: float = 0.0
    # CPU the rest of the machine used meanwhile (other programs sharing these cores), in percent
    # of one core like the two above: a level failed under a busy neighbour says little.
    others_cpu_percent: float = 0.0
    load_average: float = 0.0
    seconds: float = 0.0

    @property
    def p50(self) -> float | None:
        return percentile(self.latencies_ms, 0.5)

    @property
    def p95(self) -> float | None:
        return percentile(self.latencies_ms, 0.95)

    @property
    def rss_per_call_mb(self) -> float:
        """Growth over the idle, warmed-up service (not over the level's start: memory taken by
        earlier levels and kept is the calls' too)."""
        return max(0.0, self.rss_peak_mb - self.rss_idle_mb) / self.calls

    @property
    def passed(self) -> bool:
        p95 = self.p95
        return (
            self.held_at_once == self.calls
            and self.completed + self.hung_up_unconnected == self.dialed
            and not self.failed
            and self.underrun_calls == 0
            and p95 is not None
            and p95 <= P95_LIMIT_MS
        )

    def summary(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "held_at_once": self.held_at_once,
            "calls_made": self.dialed,
            "completed": self.completed,
            "hung_up_before_stream": self.hung_up_unconnected,
            "failed": self.failed[:10],
            "underrun_calls": self.underrun_calls,
            "underruns": self.underruns,
            "turns_timed": len(self.latencies_ms),
            "p50_turn_latency_ms": _round(self.p50),
            "p95_turn_latency_ms": _round(self.p95),
            "max_turn_latency_ms": _round(max(self.latencies_ms, default=None)),
            "p50_dtmf_latency_ms": _round(percentile(self.dtmf_latencies_ms, 0.5)),
            "phone_late_frames": self.late_frames,
            "phone_stall_gaps": self.stall_gaps,
            "service_rss_mb": round(self.rss_peak_mb, 1),
            "rss_per_call_mb": round(self.rss_per_call_mb, 2),
            "service_cpu_percent": round(self.service_cpu_percent, 1),
            "phones_cpu_percent": round(self.phones_cpu_percent, 1),
            "others_cpu_percent": round(self.others_cpu_percent, 1),
            "load_average_1min": round(self.load_average, 2),
            "seconds": round(self.seconds, 1),
            "passed": self.passed,
        }


@dataclass
class Accuracy:
    lines: int = 0
    understood: int = 0
    # Lines that mean nothing the dialog reads (no intent, amount or date: free text such as a
    # complaint's wording): any recognition "matches" them, so they are not counted.
    free_text: int = 0
    misheard: list[dict[str, str]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database when the server is reachable, else a SQLite file."""
    name = f"voicebot_bench_calls_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(ADMIN_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        say(f"PostgreSQL unreachable ({exc}); using SQLite")
        with tempfile.TemporaryDirectory(prefix="voicebot-bench-") as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        return
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def create_schema(url: str) -> str:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with make_sessionmaker(engine)() as session:
            key = create_api_key(session, role=Role.ADMIN, name="bench")
            await session.commit()
    finally:
        await engine.dispose()
    return key


def contacts(level: int, serial: int) -> list[dict[str, Any]]:
    """``level`` borrowers cycling through the persona mix, each with its own number."""
    due = (date.today() + timedelta(days=10)).isoformat()
    return [
        {
            "external_id": f"BENCH-{serial}-{index:04d}",
            "name": "김민수",
            "phone": f"+8210{serial:02d}{index:06d}",
            "time_zone": "Asia/Seoul",
            "loan_id": f"BL{serial}{index:05d}",
            "amount_due": "300000",
            "currency": "KRW",
            "due_date": due,
            "persona": f"answers:{DEFAULT_MIX[index % len(DEFAULT_MIX)]}",
        }
        for index in range(level)
    ]


async def _api(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    response = await client.request(method, path, **kwargs)
    if response.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
    return response.json()


async def _cancel(client: httpx.AsyncClient, campaign_id: int) -> None:
    """Cancel the level's campaign. PostgreSQL may pick the cancel as the victim of a deadlock
    with a call's final status event (both touch the campaign and its call-backs); it is
    retried, as a client of the API would, and each retry is reported."""
    for attempt in range(5):
        response = await client.post(f"/v1/campaigns/{campaign_id}/cancel")
        if response.status_code < 500:
            break
        say(f"  cancel of campaign {campaign_id} failed ({response.status_code}); retrying")
        await asyncio.sleep(0.2 * (attempt + 1))
    if response.status_code >= 400:
        raise RuntimeError(f"cancel {campaign_id}: {response.status_code} {response.text[:300]}")


async def run_level(
    client: httpx.AsyncClient,
    phones: Phones,
    reports: list[ConversationReport],
    service: psutil.Process,
    maker: Any,
    level: int,
    serial: int,
    seconds: float,
    idle_rss_mb: float,
) -> tuple[LevelResult, list[ConversationReport]]:
    """Hold ``level`` calls at once for ``seconds``: the dialer keeps that many live (a campaign
    with that concurrency limit and three borrowers per slot), dialing a new call as one ends."""
    result = LevelResult(calls=level)
    here = psutil.Process()
    first_report = len(reports)
    phones.most_at_once = 0
    result.rss_before_mb = service.memory_info().rss / 2**20
    result.rss_idle_mb = idle_rss_mb
    campaign = await _api(
        client,
        "POST",
        "/v1/campaigns",
        json={
            "name": f"bench calls {serial} x{level}",
            "dialog_id": DIALOG_ID,
            "calling_window": {"start": "00:00", "end": "00:00", "weekdays": list(range(7))},
            "max_attempts": 1,
            "concurrency_limit": level,
        },
    )
    campaign_id = campaign["id"]
    await _api(
        client,
        "POST",
        f"/v1/campaigns/{campaign_id}/contacts",
        json={"contacts": contacts(3 * level, serial)},
    )
    service.cpu_percent()
    here.cpu_percent()
    psutil.cpu_percent()
    started = time.monotonic()
    await _api(client, "POST", f"/v1/campaigns/{campaign_id}/start")
    while time.monotonic() - started < seconds:
        result.rss_peak_mb = max(result.rss_peak_mb, service.memory_info().rss / 2**20)
        await asyncio.sleep(SAMPLE_SECONDS)
    result.seconds = time.monotonic() - started
    result.service_cpu_percent = service.cpu_percent()
    result.phones_cpu_percent = here.cpu_percent()
    machine = psutil.cpu_percent() * (psutil.cpu_count() or 1)
    result.others_cpu_percent = max(
        0.0, machine - result.service_cpu_percent - result.phones_cpu_percent
    )
    result.load_average = os.getloadavg()[0]
    result.held_at_once = phones.most_at_once
    cancelled_at = datetime.now(UTC)
    await _cancel(client, campaign_id)
    window_end = time.monotonic()
    for _ in range(20):  # calls still ringing at the cancel are answered, then hung up too
        await phones.hang_up_all()
        await asyncio.sleep(0.5)
        if not phones.calls:
            break
    level_reports = reports[first_report:]
    for report in level_reports:
        if report.error is not None:
            result.failed.append(f"call {report.call_id}: {report.error}")
        if report.underruns:
            result.underrun_calls += 1
            result.underruns += report.underruns
        result.late_frames += report.late_frames
        result.stall_gaps += report.stall_gaps
        for turn in report.turns:
            if turn.latency_ms is not None:
                timed = result.dtmf_latencies_ms if turn.kind == "dtmf" else result.latencies_ms
                timed.append(turn.latency_ms)
    # The last conversations are written as their calls end: wait for every stream's records.
    for _ in range(60):
        async with maker() as session:
            calls = list(await session.scalars(select(Call).where(Call.campaign_id == campaign_id)))
        if all(c.end_state is not None for c in calls if c.stream_sid is not None):
            break
        await asyncio.sleep(0.5)
    result.failed.extend(f"call {c.id}: {c.stream_error}" for c in calls if c.stream_error)
    # A call dialed in the last seconds of the window may be hung up by its borrower before
    # its media stream connected: not a failure of the service. Any other call without a
    # conversation is one.
    late = cancelled_at - timedelta(seconds=LATE_DIAL_SECONDS)
    unconnected = [c for c in calls if c.stream_sid is None and c.end_state is None]
    result.hung_up_unconnected = sum(1 for c in unconnected if c.created_at >= late)
    result.completed = sum(1 for c in calls if c.end_state not in (None, "stream_error"))
    result.dialed = len(calls)
    result.failed.extend(
        f"call {c.id}: no conversation ({c.status}, dialed before the window's end)"
        for c in unconnected
        if c.created_at < late
    )
    result.failed.extend(
        f"call {c.id}: its conversation was never written"
        for c in calls
        if c.stream_sid is not None and c.end_state is None
    )
    result.window_end = window_end
    return result, level_reports


async def accuracy(
    maker: Any, dialog: Dialog, reports: Sequence[tuple[ConversationReport, float]]
) -> Accuracy:
    """Each scripted line's meaning in its state against what the transcript recognised. Lines
    cut off by the end of a level's window (not finished a second before it) do not count."""
    found = Accuracy()
    async with maker() as session:
        for report, window_end in reports:
            heard = list(
                await session.scalars(
                    select(TranscriptTurn)
                    .where(
                        TranscriptTurn.call_id == report.call_id,
                        TranscriptTurn.speaker == "borrower",
                        TranscriptTurn.dtmf.is_(False),
                    )
                    .order_by(TranscriptTurn.seq)
                )
            )
            for index, line in enumerate(t for t in report.turns if t.kind != "dtmf"):
                if not line.ended or line.ended > window_end - 1.0:
                    continue
                text = heard[index].text if index < len(heard) else ""
                when = heard[index].started_at if index < len(heard) else datetime.now(UTC)
                said = _meaning(dialog, line.state, line.text, when)
                if said == (None, None, None):
                    found.free_text += 1
                    continue
                found.lines += 1
                if said == _meaning(dialog, line.state, text, when):
                    found.understood += 1
                elif len(found.misheard) < 20:
                    found.misheard.append({"state": line.state, "said": line.text, "heard": text})
    return found


def _meaning(dialog: Dialog, state: str, text: str, when: datetime) -> tuple[Any, ...]:
    language = dialog.language
    candidates = dialog.candidates.get(state, ())
    normalized = language.normalize(text)
    intent = best_intent(language, normalized, [c.matcher for c in candidates], dialog.ignore)
    reading = language.read(text, when.astimezone(SEOUL))
    return (intent.name if intent else None, reading.amount, reading.day)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def bench(levels: Sequence[int], level_seconds: float) -> dict[str, Any]:
    dialog = load_dialog(Path(Settings().dialogs_dir) / f"{DIALOG_ID}.yaml")
    async with database() as url:
        key = await create_schema(url)
        service_port, phones_port = _free_port(), _free_port()
        base = f"http://127.0.0.1:{service_port}"
        settings = Settings(
            database_url=url, public_base_url=base, twilio_auth_token=SecretStr(AUTH_TOKEN)
        )
        reports: list[ConversationReport] = []
        voice = SimulatedVoice(settings, on_report=reports.append)
        phones = Phones(voice)
        phones_server = _Server(
            uvicorn.Config(
                phones.app(), host="127.0.0.1", port=phones_port, log_level="warning",
                access_log=False, lifespan="off",
            )
        )  # fmt: skip
        phones_task = asyncio.create_task(phones_server.serve())
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve",
            url,
            str(service_port),
            f"http://127.0.0.1:{phones_port}",
            stdout=subprocess.PIPE,
        )
        engine = make_engine(url)
        maker = make_sessionmaker(engine)
        try:
            assert process.stdout is not None
            ready = await asyncio.wait_for(process.stdout.readline(), 120)
            if ready.strip() != b"READY":
                raise RuntimeError("the service process did not start")
            for persona in KOREAN.values():
                for lines in persona.lines.values():
                    for line in lines:
                        if isinstance(line, Speak | Interrupt):
                            await voice.line_audio(LANGUAGE, line.text)
            say(
                f"service on {base} in process {process.pid} "
                f"({'PostgreSQL' if 'postgresql' in url else 'SQLite'}), warmed up in "
                f"{time.monotonic() - started:.1f} s; phones here, pid {os.getpid()}"
            )
            service = psutil.Process(process.pid)
            idle_rss_mb = service.memory_info().rss / 2**20
            results: list[LevelResult] = []
            all_reports: list[tuple[ConversationReport, float]] = []
            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60
            ) as client:
                for serial, level in enumerate(levels, start=1):
                    say(f"level {level}: {level} calls at once …")
                    result, level_reports = await run_level(
                        client, phones, reports, service, maker, level, serial, level_seconds,
                        idle_rss_mb,
                    )  # fmt: skip
                    all_reports.extend((report, result.window_end) for report in level_reports)
                    results.append(result)
                    if os.environ.get("BENCH_DEBUG"):
                        for report in level_reports:
                            turns = ", ".join(
                                f"{t.state}/{t.kind}={t.latency_ms and round(t.latency_ms)}"
                                for t in report.turns
                            )
                            say(f"    {report.persona}: {turns}")
                    say(f"  {json.dumps(result.summary(), ensure_ascii=False)}")
                    if not result.passed:
                        break
            found = await accuracy(maker, dialog, all_reports)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 30)
                if process.returncode is None:
                    process.kill()
            await engine.dispose()
            phones_server.should_exit = True
            await asyncio.gather(phones_task, return_exceptions=True)
            await voice.aclose()
    passed = [r.calls for r in results if r.passed]
    at_ten = next((r for r in results if r.calls == 10), results[0] if results else None)
    largest = results[-1] if results else None
    return {
        "max_concurrent_calls": max(passed, default=0),
        "p50_turn_latency_ms": _round(at_ten.p50) if at_ten else None,
        "p95_turn_latency_ms": _round(at_ten.p95) if at_ten else None,
        "intent_accuracy": round(found.understood / found.lines, 3) if found.lines else None,
        "utterances": found.lines,
        "free_text_utterances": found.free_text,
        "rss_per_call_mb": round(largest.rss_per_call_mb, 2) if largest else None,
        "rss_measured_at_calls": largest.calls if largest else None,
        "service_idle_rss_mb": round(idle_rss_mb, 1),
        "levels": [r.summary() for r in results],
        "misheard": found.misheard,
        "end_of_speech_ms": settings.media_end_of_speech_ms,
        "calls_per_second": CALLS_PER_SECOND,
        "cpus": os.cpu_count(),
    }


def _run(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON line on stdout")
    parser.add_argument(
        "--levels",
        default="10,20,30,40,50,60,70,80,100",
        help="concurrent calls per level (default %(default)s)",
    )
    parser.add_argument(
        "--level-seconds", type=float, default=60.0, help="seconds each level holds its calls"
    )
    parser.add_argument(
        "--serve", nargs=3, metavar=("URL", "PORT", "PHONES"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.serve:
        url, port, phones = args.serve
        profile = os.environ.get("BENCH_PROFILE")  # a file for the service's cProfile stats
        if profile:
            import cProfile

            with cProfile.Profile() as profiler:
                _run(serve_service(url, int(port), phones))
            profiler.dump_stats(profile)
        else:
            _run(serve_service(url, int(port), phones))
        return 0
    levels = [int(part) for part in args.levels.split(",") if part.strip()]
    result = _run(bench(levels, args.level_seconds))
    if not args.json:
        for key in ("max_concurrent_calls", "p50_turn_latency_ms", "p95_turn_latency_ms",
                    "intent_accuracy", "rss_per_call_mb"):  # fmt: skip
            print(f"{key}: {result[key]}")
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
