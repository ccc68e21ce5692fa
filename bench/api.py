"""The results API and the status webhook under load, on PostgreSQL with a million calls.

    .venv/bin/python bench/api.py [--json] [--calls 1000000] [--clients 20] [--workers 2]

It (re)creates its own database (``voicebot_bench_api`` on the server of
VOICEBOT_BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/postgres), migrates it,
and loads with ``INSERT … SELECT generate_series`` ``--calls`` calls (and their call-backs) over
200 campaigns and 100,000 borrowers, spread over 80 days, with dispositions in realistic
proportions and an outcome (promise, complaint, risk flag, opt-out or confirmation) on every
answered call. The real app then runs as ``voicebot serve --no-dialer --workers N`` and
``--clients`` concurrent clients measure, each for ``--requests`` requests:

- ``list_p95_ms``: ``GET /v1/calls`` filtered by campaign, disposition and a time range (as an
  analyst: numbers masked), one page of 50;
- ``report_p95_ms``: ``GET /v1/reports/campaigns/{id}`` for a random campaign;
- ``webhooks_per_s``: signed Twilio status callbacks (in-progress then completed for
  ``--live`` ringing calls) ingested per second, each answered once stored and applied;
  ``webhooks_lost``: callbacks sent whose event is not stored afterwards (refused, failed, or
  missing), plus calls not ended by them and live calls left counted.

Targets: list_p95_ms ≤ 50, report_p95_ms ≤ 200, webhooks_per_s ≥ 1500, webhooks_lost = 0.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg
import httpx
import psutil
from twilio.request_validator import RequestValidator

from cpu_meter import CpuMeter, postgres_processes, process_tree
from voicebot.db.apikeys import create_api_key
from voicebot.db.migrate import upgrade
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.domain.types import Role

DATABASE = "voicebot_bench_api"
ADMIN_URL = os.environ.get(
    "VOICEBOT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BENCH_URL = ADMIN_URL.rsplit("/", 1)[0] + "/" + DATABASE
ASYNC_URL = BENCH_URL.replace("postgresql://", "postgresql+asyncpg://")
CAMPAIGNS = 200
CONTACTS = 100_000
TOKEN = "bench-auth-token-0123456789"
START = "2026-09-01 00:00:00+00"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- data -------------------------------------------------------------------------------------


async def create_database() -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    await asyncio.to_thread(upgrade, ASYNC_URL)


async def drop_database() -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    finally:
        await admin.close()


_CAMPAIGN_COLUMNS = """name, dialog_id, status, window_start, window_end, window_weekdays,
    max_attempts_per_period, attempt_period_days, max_conversations_per_day, quiet_period_hours,
    max_attempts, retry_delays, switch_number_after, concurrency_limit, caller_numbers"""
_CAMPAIGN_VALUES = """'car_loan_followup.zh-CN', 'running', '00:00', '00:00',
    '[0,1,2,3,4,5,6]', 1000, 7, 1000, 0, 5, '{}', 2, 1000000, '["+15005550006"]'"""


async def load(calls: int, live: int) -> None:
    """Campaigns, borrowers, ``calls`` finished calls with call-backs and outcomes, and
    ``live`` ringing calls (in one more campaign) for the webhook test."""
    conn = await asyncpg.connect(BENCH_URL)
    try:
        started = time.monotonic()
        await conn.execute(
            f"""INSERT INTO campaigns ({_CAMPAIGN_COLUMNS})
            SELECT 'bench-' || g, {_CAMPAIGN_VALUES} FROM generate_series(1, {CAMPAIGNS + 1}) g"""
        )
        await conn.execute(
            f"""INSERT INTO contacts (id, external_id, name, time_zone, loan_id, fields)
            SELECT g, 'B-' || g, '借款人' || g, 'Asia/Shanghai', 'LN-' || g, '{{}}'::jsonb
            FROM generate_series(1, {CONTACTS}) g"""
        )
        await conn.execute(
            """INSERT INTO contact_phones (id, contact_id, position, e164, status,
                consecutive_failures)
            SELECT id, id, 0, '+86138' || lpad(id::text, 8, '0'), 'valid', 0 FROM contacts"""
        )
        total = calls + live
        # Campaign c holds the borrowers with id ≡ c (mod 200); the live calls are campaign 201's.
        await conn.execute(
            f"""INSERT INTO callbacks (id, campaign_id, contact_id, phone_id, due_at, priority,
                attempt, status, reason)
            SELECT g,
                CASE WHEN g > {calls} THEN {CAMPAIGNS + 1} ELSE 1 + g % {CAMPAIGNS} END,
                1 + g % {CONTACTS}, 1 + g % {CONTACTS},
                timestamptz '{START}' + g * interval '7 s', 0, 1,
                CASE WHEN g > {calls} THEN 'dialed' ELSE 'done' END, 'initial'
            FROM generate_series(1, {total}) g"""
        )
        # Dispositions by a hashed bucket 0..99 (independent of the campaign): 35 % no answer,
        # 10 % busy, 5 % failed, 5 % voicemail, 5 % hung up, 40 % answered.
        await conn.execute(
            f"""INSERT INTO calls (id, callback_id, campaign_id, contact_id, phone_id, loan_key,
                attempt, to_number, from_number, carrier_sid, status, answered_by, disposition,
                duration_seconds, conversed, created_at, answered_at, ended_at)
            SELECT g, g, cb.campaign_id, cb.contact_id, cb.phone_id, 'LN-' || cb.contact_id,
                1, '+86138' || lpad(cb.contact_id::text, 8, '0'), '+15005550006',
                'CA' || lpad(g::text, 32, '0'),
                CASE WHEN g > {calls} THEN 'ringing'
                     WHEN b < 35 THEN 'no-answer' WHEN b < 45 THEN 'busy'
                     WHEN b < 50 THEN 'failed' ELSE 'completed' END,
                CASE WHEN g > {calls} OR b < 50 THEN NULL
                     WHEN b < 55 THEN 'machine_start' ELSE 'human' END,
                CASE WHEN g > {calls} THEN NULL
                     WHEN b < 35 THEN 'no_answer' WHEN b < 45 THEN 'busy'
                     WHEN b < 50 THEN 'failed' WHEN b < 55 THEN 'voicemail'
                     WHEN b < 60 THEN 'hung_up' ELSE 'answered' END,
                CASE WHEN g > {calls} OR b < 50 THEN 0 WHEN b < 55 THEN 20
                     WHEN b < 60 THEN 5 ELSE 30 + g % 200 END,
                g <= {calls} AND b >= 60,
                cb.due_at,
                CASE WHEN g <= {calls} AND b >= 50 THEN cb.due_at + interval '8 s' END,
                CASE WHEN g <= {calls} THEN cb.due_at + interval '60 s' END
            FROM (SELECT g, (hashint4(g)::bigint % 100 + 100) % 100 AS b
                  FROM generate_series(1, {total}) g) s
            JOIN callbacks cb ON cb.id = s.g"""
        )
        await conn.execute(
            """INSERT INTO outcomes (call_id, contact_id, campaign_id, type, data, created_at)
            SELECT c.id, c.contact_id, c.campaign_id,
                (ARRAY['promise','promise','promise','promise','complaint','risk_flag',
                       'opt_out','confirmation','confirmation','confirmation'])[1 + c.k],
                CASE c.k
                  WHEN 4 THEN jsonb_build_object('category',
                      (ARRAY['harassment','wrong_amount','other'])[1 + c.id % 3], 'text', '…')
                  WHEN 5 THEN jsonb_build_object('flag', 'hardship', 'text', '…')
                  WHEN 6 THEN '{}'::jsonb
                  WHEN 7 THEN '{"fields": ["identity"]}'::jsonb
                  WHEN 8 THEN '{"fields": ["identity"]}'::jsonb
                  WHEN 9 THEN '{"fields": ["identity"]}'::jsonb
                  ELSE jsonb_build_object('amount', ((1 + c.id % 50) * 100)::text || '.00',
                      'currency', 'CNY',
                      'date', to_char(c.created_at + interval '7 days', 'YYYY-MM-DD'))
                END,
                c.created_at + interval '30 s'
            FROM (SELECT *, (hashint4(id::int + 17)::bigint % 10 + 10) % 10 AS k
                  FROM calls WHERE conversed) c"""
        )
        # A running service's daily sweep has judged every promise already due (none was paid:
        # broken). Left unjudged, the server measured would spend its first minutes catching
        # up on 160,000 of them, a backlog no running system carries.
        await conn.execute(
            """INSERT INTO promise_checks (outcome_id, status, paid_amount, checked_at)
            SELECT id, 'broken', 0, (data->>'date')::date + 1
            FROM outcomes WHERE type = 'promise' AND (data->>'date')::date < current_date"""
        )
        for table in ("contacts", "contact_phones", "callbacks", "calls"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        await conn.execute(f"UPDATE campaigns SET live_calls = {live} WHERE id = {CAMPAIGNS + 1}")
        # Every outcome so far is old news: the notifier starts after them.
        await conn.execute(
            "INSERT INTO outbox_cursors (name, last_id) "
            "SELECT 'outcomes', coalesce(max(id), 0) FROM outcomes"
        )
        loaded = time.monotonic() - started
        await conn.execute("VACUUM ANALYZE")
        # The load's dirty pages written out now, not by a checkpoint while the clock runs.
        await conn.execute("CHECKPOINT")
        outcomes = await conn.fetchval("SELECT count(*) FROM outcomes")
        say(
            f"loaded {total} calls, {outcomes} outcomes in {loaded:.1f} s "
            f"(+ vacuum {time.monotonic() - started - loaded:.1f} s)"
        )
    finally:
        await conn.close()


async def analyst_key() -> str:
    engine = make_engine(ASYNC_URL)
    try:
        async with make_sessionmaker(engine)() as session:
            key = create_api_key(session, role=Role.ANALYST, name="bench")
            await session.commit()
            return key
    finally:
        await engine.dispose()


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VOICEBOT_DATABASE_URL": ASYNC_URL,
        "VOICEBOT_DIALER_ENABLED": "false",
        "VOICEBOT_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "VOICEBOT_TWILIO_AUTH_TOKEN": TOKEN,
        "VOICEBOT_DATABASE_POOL_SIZE": "20",
    }
    # As production runs it: `voicebot serve` (here without the dialer), one process per core.
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voicebot",
            "serve",
            "--no-dialer",
            "--workers",
            str(workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )


async def wait_ready(base: str, server: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base) as http:
        for _ in range(600):
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the server never became ready")


# --- load -------------------------------------------------------------------------------------


def client_session(clients: int) -> aiohttp.ClientSession:
    """The load's HTTP client: aiohttp, whose own cost per request is a fraction of httpx's
    (on a small machine the client's CPU is taken from the server measured)."""
    return aiohttp.ClientSession(
        base_url=BASE,
        connector=aiohttp.TCPConnector(limit=clients),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def timed(
    clients: int,
    requests: int,
    make: Callable[[aiohttp.ClientSession, random.Random], Awaitable[int]],
) -> list[float]:
    """``clients`` concurrent clients each making ``requests`` requests; latencies in ms."""
    latencies: list[float] = []
    failures: list[int] = []

    async def client(n: int, http: aiohttp.ClientSession) -> None:
        rng = random.Random(n)
        for _ in range(requests):
            started = time.perf_counter()
            status = await make(http, rng)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                failures.append(status)

    async with client_session(clients) as http:
        await asyncio.gather(*(client(n, http) for n in range(clients)))
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. HTTP {failures[0]}")
    return latencies


class Cpu:
    """CPU per request over one measure, by side: the server (its supervisor and workers),
    PostgreSQL (the bench database's backends and the shared helpers) and the client (this
    process). Unlike latency and rate, it hardly moves when the machine is busy elsewhere."""

    def __init__(self, server_pid: int) -> None:
        self._meters = {
            "server": CpuMeter(process_tree(server_pid)),
            "postgres": CpuMeter(
                postgres_processes(DATABASE), discover=lambda: postgres_processes(DATABASE)
            ),
            "client": CpuMeter([psutil.Process()]),
        }

    def per_request_ms(self, requests: int) -> dict[str, float]:
        for meter in self._meters.values():
            meter.sample()
        return {
            side: round(meter.used() * 1000 / max(requests, 1), 3)
            for side, meter in self._meters.items()
        }


def p95(values: list[float]) -> float:
    return round(statistics.quantiles(values, n=100)[94], 1)


async def webhooks(
    clients: int, calls: int, live: int, server_pid: int
) -> tuple[float, int, int, dict[str, float]]:
    """Each live call gets in-progress then completed, signed as Twilio signs them; the calls
    are dealt to the clients so one call's events are sent in order. Returns callbacks per
    second, lost, refused, and CPU per callback."""
    validator = RequestValidator(TOKEN)
    ids = list(range(calls + 1, calls + live + 1))
    sent = 0
    refused = 0

    def form(call_id: int, status: str, seq: int) -> dict[str, str]:
        fields = {
            "AccountSid": "AC" + "0" * 32,
            "ApiVersion": "2010-04-01",
            "CallSid": "CA" + str(call_id).rjust(32, "0"),
            "CallStatus": status,
            "Direction": "outbound-api",
            "From": "+15005550006",
            "To": "+8613800000001",
            "SequenceNumber": str(seq),
        }
        if status == "completed":
            fields["CallDuration"] = "42"
        return fields

    def signed(call_id: int, status: str, seq: int) -> tuple[str, str, dict[str, str]]:
        fields = form(call_id, status, seq)
        path = f"/webhooks/twilio/status?call_id={call_id}"
        headers = {
            "X-Twilio-Signature": validator.compute_signature(BASE + path, fields),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        return path, urlencode(fields), headers

    # Signed before the clock starts: signing is the carrier's work, not the service's.
    requests = [
        [
            signed(call_id, status, seq)
            for call_id in ids[n::clients]
            for seq, status in enumerate(("in-progress", "completed"), start=1)
        ]
        for n in range(clients)
    ]

    async def client(n: int, http: aiohttp.ClientSession) -> None:
        nonlocal sent, refused
        for path, body, headers in requests[n]:
            async with http.post(path, data=body, headers=headers) as response:
                await response.read()
                sent += 1
                refused += response.status != 200

    cpu = Cpu(server_pid)
    started = time.perf_counter()
    async with client_session(clients) as http:
        await asyncio.gather(*(client(n, http) for n in range(clients)))
    elapsed = time.perf_counter() - started
    cpu_ms = cpu.per_request_ms(sent)
    conn = await asyncpg.connect(BENCH_URL)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM carrier_events WHERE call_id > $1", calls
        )
        # Answered means applied, too: every call ended, its campaign's live-call count back to 0.
        unapplied = await conn.fetchval(
            "SELECT count(*) FROM calls WHERE id > $1 AND disposition IS DISTINCT FROM 'answered'",
            calls,
        )
        live_left = await conn.fetchval(
            "SELECT live_calls FROM campaigns WHERE id = $1", CAMPAIGNS + 1
        )
    finally:
        await conn.close()
    lost = sent - int(stored)
    say(
        f"webhooks: {sent} sent in {elapsed:.1f} s, {refused} refused, {stored} stored; "
        f"{unapplied} calls not ended as answered, {live_left} live calls left"
    )
    return sent / elapsed, lost + int(unapplied) + int(live_left), refused, cpu_ms


BASE = ""


async def main() -> None:
    global BASE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="(the last line is always JSON)")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--live", type=int, default=10_000, help="calls for the webhook test")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=50, help="per client and measure")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn processes")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    load_at_start = _load_average()
    say(f"machine load average (1 min) at start: {load_at_start}; other work skews the rates")
    await create_database()
    server: subprocess.Popen[bytes] | None = None
    try:
        await load(args.calls, args.live)
        key = await analyst_key()
        port = free_port()
        BASE = f"http://127.0.0.1:{port}"
        server = start_server(port, args.workers)
        await wait_ready(BASE, server)
        headers = {"Authorization": f"Bearer {key}"}
        days = args.calls * 7 // 86_400

        async def get(http: aiohttp.ClientSession, url: str, **params: Any) -> int:
            async with http.get(url, params=params, headers=headers) as response:
                await response.read()
                return response.status

        async def list_calls(http: aiohttp.ClientSession, rng: random.Random) -> int:
            day = rng.randrange(max(days - 7, 1))
            params = {
                "campaign_id": rng.randrange(1, CAMPAIGNS + 1),
                "disposition": rng.choice(["answered", "no_answer", "busy"]),
                "since": f"2026-09-{1 + day % 28:02d}T00:00:00Z",
                "until": "2026-12-01T00:00:00Z",
                "limit": 50,
            }
            return await get(http, "/v1/calls", **params)

        async def report(http: aiohttp.ClientSession, rng: random.Random) -> int:
            return await get(http, f"/v1/reports/campaigns/{rng.randrange(1, CAMPAIGNS + 1)}")

        # Warm-up at the measured concurrency: every pooled connection the measure will use is
        # opened, and has its statements prepared, before it starts.
        await timed(args.clients, 5, list_calls)
        await timed(args.clients, 5, report)
        cpu = Cpu(server.pid)
        list_ms = await timed(args.clients, args.requests, list_calls)
        cpu_ms = {"list": cpu.per_request_ms(len(list_ms))}
        say(f"list: median {statistics.median(list_ms):.1f} ms, p95 {p95(list_ms)} ms")
        cpu = Cpu(server.pid)
        report_ms = await timed(args.clients, args.requests, report)
        cpu_ms["report"] = cpu.per_request_ms(len(report_ms))
        say(f"report: median {statistics.median(report_ms):.1f} ms, p95 {p95(report_ms)} ms")
        per_s, lost, refused, cpu_ms["webhook"] = await webhooks(
            args.clients, args.calls, args.live, server.pid
        )
        for measure, sides in cpu_ms.items():
            spent = ", ".join(f"{side} {ms}" for side, ms in sides.items())
            say(f"CPU per {measure} request (ms): {spent}")
        result = {
            "list_p95_ms": p95(list_ms),
            "report_p95_ms": p95(report_ms),
            "webhooks_per_s": round(per_s, 1),
            "webhooks_lost": lost,
            "details": {
                "calls": args.calls,
                "campaigns": CAMPAIGNS,
                "clients": args.clients,
                "workers": args.workers,
                "requests_per_measure": args.clients * args.requests,
                "list_median_ms": round(statistics.median(list_ms), 1),
                "report_median_ms": round(statistics.median(report_ms), 1),
                "webhooks_refused": refused,
                "cpus": os.cpu_count(),
                # Where the machine's CPU went per request; the rates above move with whatever
                # else the machine is doing, these much less.
                "cpu_ms_per_request": cpu_ms,
                "load_average_1min": {"start": load_at_start, "end": _load_average()},
            },
        }
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if not args.keep:
            await drop_database()
    print(json.dumps(result))


def _load_average() -> float:
    return round(float(psutil.getloadavg()[0]), 2)


if __name__ == "__main__":
    asyncio.run(main())
