"""``voicebot demo``: the embedded default, end to end, in one process.

A fresh SQLite file is migrated; the real app is served by uvicorn on a free loopback port with the
real dialer inside it; the simulated carrier posts signed status callbacks back through that HTTP
server. The demo then behaves like an operator: it creates a campaign, imports borrowers as CSV,
starts the campaign and watches its progress over the ``/v1`` API until no call is left to make.
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
from voicebot.db.models import Call, Outcome
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.domain.phones import InvalidPhoneNumber, parse_phone
from voicebot.domain.types import Role

DIALOG_ID = "car_loan_followup.zh-CN"
RETRY_DELAY_SECONDS = 2
MAX_ATTEMPTS = 3
CALLS_PER_SECOND = 10.0
_UNFINISHED = ("pending", "claimed", "dialed")
# The persona each contact gets, in turn: the mix a collection list sees, every behaviour shown.
PERSONA_CYCLE = (
    *("answers", "no_answer", "answers", "busy", "voicemail"),
    *("answers", "hangs_up", "no_answer", "answers", "fails"),
)
_CALLBACK_ORDER = ("pending", "claimed", "dialed", "done", "cancelled")
_DISPOSITION_ORDER = ("answered", "hung_up", "voicemail", "no_answer", "busy", "failed", "canceled")
_PERSONA_ORDER = ("answers", "hangs_up", "voicemail", "no_answer", "busy", "fails")
_DISPLAY_ORDER = (*_CALLBACK_ORDER, *_DISPOSITION_ORDER)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_GIVEN_NAMES = (*"伟芳娜敏静丽强磊军洋勇艳杰娟涛明超", "秀英", "桂英", "建华")
_MOBILE_PREFIXES = ("135", "136", "138", "139", "150", "151", "158", "186", "187", "188")


class DemoError(RuntimeError):
    """The demo could not run; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    contacts: int = 20
    keep: bool = False
    timeout_seconds: float = 50.0


@dataclass(slots=True)
class DemoSummary:
    contacts: int = 0
    contacts_called: int = 0
    calls: int = 0
    dispositions: dict[str, int] = field(default_factory=dict)
    callbacks: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    calls_per_contact: dict[str, int] = field(default_factory=dict)
    campaign_id: int | None = None
    campaign_status: str | None = None
    seconds: float = 0.0
    finished: bool = False
    interrupted: bool = False
    database: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "contacts": self.contacts,
            "contacts_called": self.contacts_called,
            "calls": self.calls,
            "dispositions": self.dispositions,
            "callbacks": self.callbacks,
            "outcomes": self.outcomes,
            "calls_per_contact": self.calls_per_contact,
            "campaign_id": self.campaign_id,
            "campaign_status": self.campaign_status,
            "seconds": round(self.seconds, 2),
            "finished": self.finished,
            "interrupted": self.interrupted,
            "database": self.database,
        }

    def lines(self) -> list[str]:
        called = f"{self.contacts_called}/{self.contacts} contacts called"
        outcomes = _counts(self.outcomes) or "none yet (the bot's voice comes with the dialogs)"
        state = "interrupted" if self.interrupted else "timed out"
        if self.finished:
            state = "finished"
        return [
            "",
            f"Summary ({state} in {self.seconds:.1f} s, campaign {self.campaign_id} "
            f"{self.campaign_status}):",
            f"  contacts      {self.contacts} ({called})",
            f"  calls         {self.calls} "
            f"(contacts by calls made: {_histogram(self.calls_per_contact) or '-'})",
            f"  dispositions  {_counts(self.dispositions) or '-'}",
            f"  call-backs    {_counts(self.callbacks) or '-'}",
            f"  outcomes      {outcomes}",
            f"  database      {self.database or 'removed (use --keep to keep it)'}",
        ]


def demo_contacts(count: int, *, today: date, seed: int = 20240801) -> list[dict[str, str]]:
    """Borrowers with Chinese names, valid +86 mobile numbers, loan fields and a persona each.

    Every third contact that is hard to reach has an alternate number, so number switching shows.
    """
    rng = random.Random(seed)
    seen: set[str] = set()

    def mobile() -> str:
        while True:
            candidate = "+86" + rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
            try:
                e164 = parse_phone(candidate).e164
            except InvalidPhoneNumber:
                continue
            if e164 not in seen:
                seen.add(e164)
                return e164

    rows = []
    for index in range(count):
        persona = PERSONA_CYCLE[index % len(PERSONA_CYCLE)]
        due = today + timedelta(days=rng.randint(-30, 10))
        alternates = [mobile()] if persona in {"no_answer", "fails"} and index % 3 == 1 else []
        rows.append(
            {
                "external_id": f"DEMO-{index + 1:04d}",
                "name": rng.choice(_SURNAMES) + rng.choice(_GIVEN_NAMES),
                "phone": mobile(),
                "alternate_phones": ";".join(alternates),
                "time_zone": "Asia/Shanghai",
                "loan_id": f"CL{today.year}{index + 1:06d}",
                "amount_due": f"{rng.randint(1500, 9000)}.{rng.randrange(100):02d}",
                "currency": "CNY",
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
    started = time.monotonic()
    workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="voicebot-demo-"))
    summary = DemoSummary(database=str(workdir / "voicebot.db") if options.keep else None)
    try:
        await _run_in(workdir, options, say, summary, started)
    finally:
        summary.seconds = time.monotonic() - started
        if not options.keep:
            await asyncio.to_thread(shutil.rmtree, workdir, True)
    return summary


async def _run_in(
    workdir: Path,
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
            dialer_enabled=True,
            dialer_id="demo-dialer",
            dialer_poll_seconds=0.2,
            carrier_calls_per_second=CALLS_PER_SECOND,
            simulated_ring_seconds=0.3,
            simulated_talk_seconds=0.6,
            simulated_dial_log=None,
        )
        app = create_app(settings)
        server = _EmbeddedServer(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        )
        server_task = asyncio.create_task(server.serve(sockets=[sock]), name="demo-server")
        interrupted = asyncio.Event()
        with _signals_set(interrupted):
            try:
                await _wait_started(server, server_task)
                say(f"Service: the real app and dialer on {base_url} (uvicorn, in this process)")
                say(
                    f"Carrier: simulated, posting signed Twilio status callbacks to {base_url}"
                    "/webhooks/twilio/status"
                )
                async with httpx.AsyncClient(
                    base_url=base_url,
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=httpx.Timeout(30.0),
                ) as client:
                    await _operate(client, options, say, summary, started, interrupted, server_task)
                sessionmaker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
                await _count_from_database(sessionmaker, summary)
            finally:
                server.should_exit = True
                await asyncio.gather(server_task, return_exceptions=True)


async def _operate(
    client: httpx.AsyncClient,
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
            "name": f"演示回访 demo {datetime.now(UTC):%Y-%m-%d %H:%M:%S}",
            "dialog_id": DIALOG_ID,
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
        f"Campaign {campaign_id} created: up to {MAX_ATTEMPTS} attempts, retries after "
        f"{RETRY_DELAY_SECONDS} s, pacing {CALLS_PER_SECOND:g} calls/s"
    )
    say(
        "  note: the demo calls all day; campaigns default to 08:00-21:00 in each borrower's "
        "local time, and retries to hours, not seconds"
    )

    rows = demo_contacts(options.contacts, today=datetime.now(UTC).date())
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
    say(f"Campaign {campaign_id} started; watching progress:")

    deadline = started + options.timeout_seconds
    last_line = ""
    while True:
        progress = await _call(client, "GET", f"/v1/campaigns/{campaign_id}/progress")
        callbacks = {k: int(v) for k, v in progress.get("callbacks", {}).items() if v}
        calls = {k: int(v) for k, v in progress.get("calls", {}).items() if v}
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
        if not any(callbacks.get(status, 0) for status in _UNFINISHED):
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


async def _count_from_database(
    sessionmaker: async_sessionmaker[AsyncSession], summary: DemoSummary
) -> None:
    """What the API does not expose yet: calls per contact and outcomes by type."""
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
