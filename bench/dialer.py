"""Dialer throughput on PostgreSQL: the product's claim → gate → pace → dial path against a bare
``FOR UPDATE SKIP LOCKED`` claim of the same rows.

    .venv/bin/python bench/dialer.py [--json] [--rows 1000000] [--workers 4] [--batch 1000]

It (re)creates its own database (``voicebot_bench`` on the server of VOICEBOT_BENCH_POSTGRES_URL,
default postgresql://postgres@127.0.0.1:5432/postgres), loads ``--rows`` contacts with one
call-back each (half due now, half due tomorrow), and runs ``--workers`` processes of the real
``voicebot.dialer.loop.Dialer`` with a no-op carrier until nothing is due. The campaign's calling
window is all day, so the result does not depend on the hour the bench runs; every other
compliance rule is on (attempt cap, conversation cap, do-not-call, campaign state, concurrency).
Then the table is reloaded and the same rows are claimed by the reference: a batched
``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED LIMIT n) RETURNING id`` from as many
processes. The last line is JSON: dials_per_s, reference_per_s, ratio, double_dials,
peak_rss_mb, rss_flat, and the details.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType
from typing import Any

import asyncpg
import psutil

from cpu_meter import CpuMeter, postgres_processes
from voicebot.config import Settings
from voicebot.db.models import Base
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.dialer.loop import Dialer, freeze_startup_heap
from voicebot.dialer.queue import claim_statement
from voicebot.telephony.carrier import DialRequest

DATABASE = "voicebot_bench"
ADMIN_URL = os.environ.get(
    "VOICEBOT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BENCH_URL = ADMIN_URL.rsplit("/", 1)[0] + "/" + DATABASE
ZONES = ("Asia/Shanghai", "Asia/Seoul", "America/New_York")
RSS_SAMPLE_SECONDS = 0.2


class NoopCarrier:
    """Accepts every call at once and does nothing else: the bench measures the dialer."""

    async def place_call(self, request: DialRequest) -> str:
        return f"BN{request.call_id:032d}"

    async def hang_up(self, carrier_sid: str) -> None:
        return None

    async def cancel(self, carrier_sid: str) -> None:
        return None

    async def leave_message(self, carrier_sid: str, text: str, language: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


def say(message: str) -> None:
    print(message, flush=True)


# --- data -------------------------------------------------------------------------------------


async def create_database() -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    engine = make_engine(_async_url(BENCH_URL))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


async def drop_database() -> None:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    finally:
        await admin.close()


async def load(rows: int) -> None:
    conn = await asyncpg.connect(BENCH_URL)
    try:
        await conn.execute(
            """
            INSERT INTO campaigns (name, dialog_id, status, window_start, window_end,
                window_weekdays, max_attempts_per_period, attempt_period_days,
                max_conversations_per_day, quiet_period_hours, max_attempts, retry_delays,
                switch_number_after, concurrency_limit, caller_numbers, started_at)
            VALUES ('bench', 'car_loan_followup.zh-CN', 'running', '00:00', '00:00',
                '[0,1,2,3,4,5,6]', 7, 7, 3, 0, 5, '{}', 2, 2000000000,
                '["+15005550006", "+15005550007"]', now())
            """
        )
        zones = "ARRAY[" + ",".join(f"'{z}'" for z in ZONES) + "]"
        await conn.execute(
            f"""
            INSERT INTO contacts (external_id, name, time_zone, loan_id, fields)
            SELECT 'bench-' || g, 'Borrower ' || g, ({zones})[1 + g % {len(ZONES)}],
                   'LOAN-' || g, '{{}}'::jsonb
            FROM generate_series(1, $1::int) AS g
            """,
            rows,
        )
        await conn.execute(
            """
            INSERT INTO contact_phones (contact_id, position, e164, status, consecutive_failures)
            SELECT id, 0, '+86138' || lpad(id::text, 8, '0'), 'valid', 0 FROM contacts
            """
        )
        await load_callbacks(conn)
    finally:
        await conn.close()


async def load_callbacks(conn: asyncpg.Connection) -> None:
    """One call-back per contact, as an import makes them (in contact order, a little later each):
    even contacts due within the last ten minutes, odd ones tomorrow."""
    await conn.execute("TRUNCATE callbacks, calls, carrier_events CASCADE")
    await conn.execute(
        """
        INSERT INTO callbacks (campaign_id, contact_id, phone_id, due_at, priority, attempt,
                               status, reason)
        SELECT 1, p.contact_id, p.id,
               CASE WHEN p.contact_id % 2 = 0
                    THEN now() - interval '10 min' + p.contact_id * interval '100 us'
                    ELSE now() + interval '1 day' END,
               0, 1, 'pending', 'initial'
        FROM contact_phones p
        """
    )
    await conn.execute("UPDATE campaigns SET live_calls = 0")
    await conn.execute("VACUUM ANALYZE")


async def explain_claim(batch: int) -> list[str]:
    """The product's claim statement, as PostgreSQL runs it (EXPLAIN ANALYZE, rolled back)."""
    engine = make_engine(_async_url(BENCH_URL))
    try:
        statement = claim_statement(
            postgres=True,
            limit=batch,
            now=datetime.now(UTC),
            dialer_id="explain",
            lease=timedelta(minutes=5),
        )
        compiled = statement.compile(dialect=engine.dialect)
        params = compiled.construct_params()
        args = [params[name] for name in compiled.positiontup or ()]
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(BENCH_URL)
    try:
        async with conn.transaction():
            rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + compiled.string, *args)
            raise _Rollback
    except _Rollback:
        pass
    finally:
        await conn.close()
    return [r[0] for r in rows]


class _Rollback(Exception):
    pass


# --- workers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerResult:
    count: int
    started: float
    finished: float


def dialer_worker(index: int, batch: int, ready: Any, go: EventType, out: Any) -> None:
    asyncio.run(_dialer_worker(index, batch, ready, go, out))


async def _dialer_worker(index: int, batch: int, ready: Any, go: EventType, out: Any) -> None:
    settings = Settings(
        environment="test",
        database_url=_async_url(BENCH_URL),
        database_pool_size=4,
        dialer_id=f"bench-{index}",
        dialer_batch_size=batch,
        dialer_lease_seconds=300,
        carrier_calls_per_second=1_000_000_000.0,
    )
    engine = make_engine(settings.database_url, pool_size=settings.database_pool_size)
    dialer = Dialer(settings, make_sessionmaker(engine), NoopCarrier())
    await dialer.run_once(datetime(2000, 1, 1, tzinfo=UTC))  # connect and warm up: nothing due
    freeze_startup_heap()  # as Dialer.run does
    ready.put(index)
    await asyncio.to_thread(go.wait)
    started = time.perf_counter()
    placed = 0
    while True:
        now = datetime.now(UTC)
        dialed = await dialer.run_once(now)
        placed += dialed
        if dialed == 0:
            break
    finished = time.perf_counter()
    await engine.dispose()
    out.put(WorkerResult(placed, started, finished))


def reference_worker(index: int, batch: int, ready: Any, go: EventType, out: Any) -> None:
    asyncio.run(_reference_worker(index, batch, ready, go, out))


async def _reference_worker(index: int, batch: int, ready: Any, go: EventType, out: Any) -> None:
    conn = await asyncpg.connect(BENCH_URL)
    statement = await conn.prepare(
        """
        UPDATE callbacks SET status = 'claimed', claimed_by = $1,
               lease_expires_at = now() + interval '5 minutes', updated_at = now()
        WHERE id IN (
            SELECT id FROM callbacks
            WHERE status = 'pending' AND due_at <= now()
            ORDER BY due_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED)
        RETURNING id
        """
    )
    ready.put(index)
    await asyncio.to_thread(go.wait)
    started = time.perf_counter()
    claimed = 0
    while True:
        rows = await statement.fetch(f"reference-{index}", batch)
        claimed += len(rows)
        if not rows:
            break
    finished = time.perf_counter()
    await conn.close()
    out.put(WorkerResult(claimed, started, finished))


@dataclass(frozen=True, slots=True)
class RunResult:
    count: int
    seconds: float
    peak_rss_mb: float
    rss_flat: bool
    rss_mb_by_quarter: list[float]
    worker_cpu_s: float
    postgres_cpu_s: float


def run_workers(
    target: Callable[[int, int, Any, EventType, Any], None], workers: int, batch: int
) -> RunResult:
    ctx = mp.get_context("spawn")
    ready, out = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    processes = [
        ctx.Process(target=target, args=(i, batch, ready, go, out)) for i in range(workers)
    ]
    for p in processes:
        p.start()
    for _ in processes:
        ready.get(timeout=120)
    watched = [psutil.Process(p.pid) for p in processes if p.pid is not None]
    samples: list[tuple[float, float]] = []  # (time, largest worker RSS in MB)
    worker_cpu = CpuMeter(watched)
    postgres_cpu = CpuMeter(
        postgres_processes(DATABASE), discover=lambda: postgres_processes(DATABASE)
    )
    go.set()
    results: list[WorkerResult] = []
    while len(results) < workers:
        worker_cpu.sample()
        postgres_cpu.sample()
        rss = [_rss_mb(w) for w in watched]
        samples.append((time.perf_counter(), max(rss)))
        try:
            results.append(out.get(timeout=RSS_SAMPLE_SECONDS))
        except Exception:  # queue.Empty: keep sampling
            continue
    for p in processes:
        p.join(timeout=60)
        if p.exitcode != 0:
            raise SystemExit(f"a worker failed with exit code {p.exitcode}")
    started = min(r.started for r in results)
    finished = max(r.finished for r in results)
    quarters = _by_quarter(samples, started, finished)
    peak = max(s[1] for s in samples)
    # Flat: the last quarter's peak is within 10% (or 5 MB) of the first quarter's.
    flat = quarters[-1] <= max(quarters[0] * 1.10, quarters[0] + 5.0)
    return RunResult(
        sum(r.count for r in results),
        finished - started,
        peak,
        flat,
        quarters,
        worker_cpu.used(),
        postgres_cpu.used(),
    )


def _rss_mb(process: psutil.Process) -> float:
    try:
        return float(process.memory_info().rss) / 2**20
    except psutil.NoSuchProcess:
        return 0.0


def _by_quarter(samples: Sequence[tuple[float, float]], start: float, end: float) -> list[float]:
    span = max(end - start, 1e-9)
    peaks = [0.0, 0.0, 0.0, 0.0]
    for at, rss in samples:
        quarter = min(3, max(0, int((at - start) / span * 4)))
        peaks[quarter] = max(peaks[quarter], rss)
    for i in range(1, 4):  # a quarter without samples (very short runs) inherits the previous
        peaks[i] = peaks[i] or peaks[i - 1]
    return [round(p, 1) for p in peaks]


# --- checks -----------------------------------------------------------------------------------


async def dial_counts() -> tuple[int, int, int]:
    """(calls, distinct call-backs called, call-backs called more than once)."""
    conn = await asyncpg.connect(BENCH_URL)
    try:
        calls = await conn.fetchval("SELECT count(*) FROM calls")
        distinct = await conn.fetchval("SELECT count(DISTINCT callback_id) FROM calls")
        doubles = await conn.fetchval(
            "SELECT count(*) FROM (SELECT callback_id FROM calls GROUP BY callback_id "
            "HAVING count(*) > 1) AS d"
        )
    finally:
        await conn.close()
    return int(calls), int(distinct), int(doubles)


async def prepare(rows: int) -> float:
    started = time.perf_counter()
    await create_database()
    await load(rows)
    return time.perf_counter() - started


async def reload() -> None:
    conn = await asyncpg.connect(BENCH_URL)
    try:
        await load_callbacks(conn)
    finally:
        await conn.close()


def _async_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/dialer.py",
        description=(
            "Dialer throughput on PostgreSQL: the real claim → gate → pace → dial path in N "
            "worker processes with a no-op carrier, against a bare batched FOR UPDATE SKIP "
            f"LOCKED claim of the same rows. Recreates the database {DATABASE!r} on the server "
            "of VOICEBOT_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/"
            "postgres). The last line printed is JSON."
        ),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="leave out the closing summary line (the last line is JSON either way)",
    )
    parser.add_argument(
        "--keep", action="store_true", help=f"keep the {DATABASE} database afterwards"
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="call-backs (half due now)")
    parser.add_argument("--workers", type=int, default=4, help="dialer / reference processes")
    parser.add_argument("--batch", type=int, default=1000, help="call-backs per claim")
    args = parser.parse_args(argv)

    load_at_start = round(psutil.getloadavg()[0], 2)
    say(f"machine load average (1 min) at start: {load_at_start}; other work skews the rates")
    say(f"loading {args.rows:,} contacts and call-backs into {DATABASE} …")
    load_seconds = asyncio.run(prepare(args.rows))
    due = args.rows // 2
    say(f"loaded in {load_seconds:.1f} s; {due:,} due now, the rest tomorrow")
    say("calling window: all day (00:00-00:00), so the result does not depend on the hour;")
    say("attempt cap, conversation cap, do-not-call, campaign state and concurrency are checked")
    plan = asyncio.run(explain_claim(args.batch))
    say("the dialer's claim statement, EXPLAIN ANALYZE (rolled back):")
    for line in plan:
        say("    " + line)

    say(f"dialer: {args.workers} worker processes, batch {args.batch} …")
    dialer = run_workers(dialer_worker, args.workers, args.batch)
    calls, distinct, doubles = asyncio.run(dial_counts())
    dials_per_s = dialer.count / dialer.seconds
    say(
        f"dialer: {dialer.count:,} dials in {dialer.seconds:.2f} s = {dials_per_s:,.0f}/s; "
        f"calls {calls:,} for {distinct:,} call-backs; double dials {doubles}"
    )
    say(
        f"dialer worker RSS by quarter of the run (MB): {dialer.rss_mb_by_quarter}; "
        f"peak {dialer.peak_rss_mb:.1f} MB; flat: {dialer.rss_flat}"
    )
    say(
        f"CPU seconds: dialer workers {dialer.worker_cpu_s:.1f}, PostgreSQL "
        f"{dialer.postgres_cpu_s:.1f} (machine: {psutil.cpu_count()} cores)"
    )

    say("reference: reloading the call-backs …")
    asyncio.run(reload())
    reference = run_workers(reference_worker, args.workers, args.batch)
    reference_per_s = reference.count / reference.seconds
    say(
        f"reference: {reference.count:,} claims in {reference.seconds:.2f} s "
        f"= {reference_per_s:,.0f}/s; CPU seconds: workers {reference.worker_cpu_s:.1f}, "
        f"PostgreSQL {reference.postgres_cpu_s:.1f}"
    )
    ratio = dials_per_s / reference_per_s
    result = {
        "dials_per_s": round(dials_per_s),
        "reference_per_s": round(reference_per_s),
        "ratio": round(ratio, 3),
        "double_dials": doubles,
        "peak_rss_mb": round(dialer.peak_rss_mb, 1),
        "rss_flat": dialer.rss_flat,
        "rss_mb_by_quarter": dialer.rss_mb_by_quarter,
        "dials": dialer.count,
        "due": due,
        "calls": calls,
        "rows": args.rows,
        "workers": args.workers,
        "batch": args.batch,
        "dialer_seconds": round(dialer.seconds, 2),
        "reference_seconds": round(reference.seconds, 2),
        "load_seconds": round(load_seconds, 1),
        "dialer_cpu_s": {
            "workers": round(dialer.worker_cpu_s, 1),
            "postgres": round(dialer.postgres_cpu_s, 1),
        },
        "reference_cpu_s": {
            "workers": round(reference.worker_cpu_s, 1),
            "postgres": round(reference.postgres_cpu_s, 1),
        },
        # CPU per row, dialer processes and PostgreSQL together: what the machine's other load
        # does not change.
        "cpu_us_per_dial": round(
            (dialer.worker_cpu_s + dialer.postgres_cpu_s) / max(dialer.count, 1) * 1e6
        ),
        "cpu_us_per_reference_claim": round(
            (reference.worker_cpu_s + reference.postgres_cpu_s) / max(reference.count, 1) * 1e6
        ),
        "load_average_1min": {"start": load_at_start, "end": round(psutil.getloadavg()[0], 2)},
        "calling_window": "all day",
    }
    if not args.json:
        say(
            f"ratio {ratio:.2f} (target ≥ 0.5), dials/s {dials_per_s:,.0f} (target ≥ 10,000), "
            f"double dials {doubles} (target 0), peak RSS {dialer.peak_rss_mb:.0f} MB "
            "(target < 200)"
        )
    if not args.keep:
        asyncio.run(drop_database())
    print(json.dumps(result), flush=True)
    return 0 if doubles == 0 and dialer.count == due == calls else 1


if __name__ == "__main__":
    sys.exit(main())
