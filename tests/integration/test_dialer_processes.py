"""Dialer processes sharing one PostgreSQL database, checked from the simulated carrier's own log.

Real processes: ``voicebot serve --no-dialer`` receives the carrier's signed callbacks, and
``voicebot dialer`` processes claim and dial with the simulated carrier, which appends one JSON
line per dial to VOICEBOT_SIMULATED_DIAL_LOG.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.db.models import Call, CallBack, Campaign, Contact, ContactPhone
from voicebot.db.session import make_engine, make_sessionmaker

pytestmark = pytest.mark.slow

PERSONAS = ("answers", "busy", "no_answer", "voicemail", "hangs_up", "answers")


@pytest.fixture
async def maker(pg_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _seed(
    maker: async_sessionmaker[AsyncSession], count: int, *, status: str = "running"
) -> list[int]:
    """A campaign open all day, ``count`` contacts, one due call-back each."""
    now = datetime.now(UTC)
    async with maker() as session:
        campaign = Campaign(
            name="processes",
            dialog_id="car_loan_followup.zh-CN",
            status=status,
            window_start=datetime.min.time(),
            window_end=datetime.min.time(),
            window_weekdays=list(range(7)),
            concurrency_limit=100_000,
            caller_numbers=["+15005550006", "+15005550007"],
            retry_delays={},
        )
        session.add(campaign)
        contacts = [
            Contact(
                external_id=f"p-{i}",
                name=f"Borrower {i}",
                time_zone="Asia/Shanghai",
                fields={"persona": PERSONAS[i % len(PERSONAS)]},
                phones=[ContactPhone(position=0, e164=f"+86138{i:08d}", status="valid")],
            )
            for i in range(count)
        ]
        session.add_all(contacts)
        await session.flush()
        callbacks = [
            CallBack(
                campaign_id=campaign.id,
                contact_id=c.id,
                phone_id=c.phones[0].id,
                due_at=now - timedelta(seconds=1),
                attempt=1,
                status="pending",
                reason="initial",
            )
            for c in contacts
        ]
        session.add_all(callbacks)
        await session.commit()
        return [cb.id for cb in callbacks]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _processes() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``voicebot …`` processes; any still running at the end are terminated."""
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "voicebot", *args],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _environment(pg_url: str, port: int, dial_log: Path, **extra: str) -> dict[str, str]:
    return {
        "VOICEBOT_ENVIRONMENT": "test",
        "VOICEBOT_DATABASE_URL": pg_url,
        "VOICEBOT_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "VOICEBOT_PORT": str(port),
        "VOICEBOT_SIMULATED_DIAL_LOG": str(dial_log),
        "VOICEBOT_SIMULATED_RING_SECONDS": "0.05",
        "VOICEBOT_SIMULATED_TALK_SECONDS": "0.05",
        "VOICEBOT_DIALER_POLL_SECONDS": "0.1",
        **extra,
    }


def _dials(dial_log: Path) -> list[dict[str, object]]:
    if not dial_log.exists():
        return []
    return [json.loads(line) for line in dial_log.read_text().splitlines() if line.strip()]


async def _wait_until(condition: Callable[[], object], seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _count(maker: async_sessionmaker[AsyncSession], *where: ColumnElement[bool]) -> int:
    async with maker() as session:
        query = select(func.count()).select_from(CallBack).where(*where)
        return int(await session.scalar(query) or 0)


async def test_four_dialers_never_dial_a_callback_twice(
    pg_url: str, maker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    ids = await _seed(maker, 40, status="paused")
    port = _free_port()
    dial_log = tmp_path / "dials.jsonl"
    env = _environment(
        pg_url,
        port,
        dial_log,
        VOICEBOT_DIALER_BATCH_SIZE="2",
        VOICEBOT_CARRIER_CALLS_PER_SECOND="2000",
    )
    with _processes() as start:
        start(["serve", "--no-dialer", "--log-level", "info"], env, tmp_path / "serve.log")
        # The dialers start up while the server does; they dial once the campaign runs.
        dialers = [
            start(["dialer", "--log-level", "info"], env, tmp_path / f"dialer-{i}.log")
            for i in range(4)
        ]
        async with httpx.AsyncClient() as client:

            async def serving() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
                return False

            await _wait_until(serving, 60, "the server (slow to start on a busy machine)")
        async with maker() as session:
            await session.execute(update(Campaign).values(status="running"))
            await session.commit()
        await _wait_until(lambda: len(_dials(dial_log)) >= len(ids), 25, "every call-back dialed")
        # Let the carrier's callbacks arrive: every call ends through the webhook.
        await _wait_until(lambda: _all_calls_ended(maker), 30, "every call to end")
        for dialer in dialers:
            dialer.send_signal(signal.SIGTERM)
        for dialer in dialers:
            assert dialer.wait(timeout=10) == 0

    dials = _dials(dial_log)
    per_callback = Counter(d["callback_id"] for d in dials)
    assert sorted(per_callback) == sorted(ids)
    assert max(per_callback.values()) == 1
    assert len({d["pid"] for d in dials}) >= 2  # the work was shared
    async with maker() as session:
        calls = list(await session.scalars(select(Call)))
        live = await session.scalar(select(Campaign.live_calls))
    assert len(calls) == len(ids) and len({c.callback_id for c in calls}) == len(ids)
    assert {c.status for c in calls} <= {"completed", "busy", "no-answer", "failed"}
    assert live == 0
    # Busy, unanswered and short calls got a retry call-back, due later: none was dialed.
    assert await _count(maker, CallBack.status == "pending", CallBack.reason == "retry") > 0


async def _all_calls_ended(maker: async_sessionmaker[AsyncSession]) -> bool:
    async with maker() as session:
        live = await session.scalar(
            select(func.count()).select_from(Call).where(Call.disposition.is_(None))
        )
    return live == 0


async def test_a_killed_dialers_callbacks_are_dialed_exactly_once(
    pg_url: str, maker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    ids = await _seed(maker, 60)
    port = _free_port()  # nothing listens: the carrier's callbacks are not needed here
    dial_log = tmp_path / "dials.jsonl"
    slow = _environment(
        pg_url,
        port,
        dial_log,
        VOICEBOT_DIALER_BATCH_SIZE="60",
        VOICEBOT_CARRIER_CALLS_PER_SECOND="5",
        VOICEBOT_DIALER_LEASE_SECONDS="3",
    )
    with _processes() as start:
        victim = start(["dialer", "--log-level", "warning"], slow, tmp_path / "victim.log")
        await _wait_until(lambda: len(_dials(dial_log)) >= 8, 20, "the first dials")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        async with maker() as session:
            stranded = set(
                await session.scalars(select(CallBack.id).where(CallBack.status == "claimed"))
            )
        assert len(stranded) >= 20  # the dialer died holding a leased batch

        fast = {**slow, "VOICEBOT_CARRIER_CALLS_PER_SECOND": "1000"}
        start(["dialer", "--log-level", "warning"], fast, tmp_path / "rescuer.log")
        await _wait_until(lambda: _settled(maker, ids), 20, "the stranded call-backs to be dialed")

    per_callback = Counter(d["callback_id"] for d in _dials(dial_log))
    assert max(per_callback.values()) == 1  # no call-back was dialed twice
    assert all(per_callback[i] == 1 for i in stranded)  # each stranded one exactly once
    # A call the victim recorded but never placed ends failed (a retry follows), not dialed.
    async with maker() as session:
        unplaced = list(
            await session.scalars(select(Call).where(Call.callback_id.not_in(per_callback)))
        )
    assert all(c.status == "failed" and c.disposition == "failed" for c in unplaced)
    assert len(per_callback) + len(unplaced) == len(ids)


async def _settled(maker: async_sessionmaker[AsyncSession], ids: list[int]) -> bool:
    """No original call-back is waiting, and no call is stuck before the dial."""
    waiting = await _count(maker, CallBack.id.in_(ids), CallBack.status.in_(["pending", "claimed"]))
    async with maker() as session:
        stuck = await session.scalar(
            select(func.count()).select_from(Call).where(Call.status == "initiating")
        )
    return waiting == 0 and stuck == 0
