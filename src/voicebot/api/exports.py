"""``/v1/exports``: every call or outcome matching the list filters, as CSV, streamed.

UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese text right; numbers and
names masked for the analyst role as in the JSON API; every export is written to the audit log
(who, what, which filters) before its first byte goes out.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.api.auth import Analyst, Principal
from voicebot.api.calls import call_filter
from voicebot.api.deps import SessionDep
from voicebot.api.errors import documented
from voicebot.api.outcomes import outcome_filter
from voicebot.api.result_schemas import shown_data, shown_name, shown_phone
from voicebot.db import audit
from voicebot.db.promises import PENDING, promise_statuses
from voicebot.db.results import (
    CALL_ROW_COLUMNS,
    CallFilter,
    OutcomeFilter,
    find_calls,
    find_outcomes,
)

router = APIRouter(prefix="/v1/exports", tags=["exports"], responses=documented(401, 403))

BATCH = 2_000
_BOM = "\ufeff"

CALL_COLUMNS = tuple(name for name in CALL_ROW_COLUMNS if name != "callback_id")
OUTCOME_COLUMNS = (
    "id",
    "type",
    "created_at",
    "campaign_id",
    "call_id",
    "contact_id",
    "contact_name",
    "promise_status",
    "amount",
    "currency",
    "date",
    "category",
    "flag",
    "text",
    "data",
)
_CSV = {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"}


@router.get("/calls.csv", response_class=StreamingResponse, responses={200: _CSV})
async def export_calls(
    request: Request,
    principal: Analyst,
    session: SessionDep,
    where: Annotated[CallFilter, Depends(call_filter)],
) -> StreamingResponse:
    """Every call ``GET /v1/calls`` would list with the same filters, newest first."""
    await _audit(session, principal, "exports.calls", asdict(where))

    async def rows(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[list[list[Any]]]:
        before: int | None = None
        while True:
            async with maker() as batch_session:
                page = await find_calls(batch_session, where, limit=BATCH, before_id=before)
            if not page:
                return
            yield [
                [
                    call.id,
                    call.campaign_id,
                    call.contact_id,
                    shown_name(principal, call.contact_name),
                    shown_phone(principal, call.to_number),
                    shown_phone(principal, call.from_number),
                    call.attempt,
                    call.status,
                    call.disposition,
                    call.answered_by,
                    call.duration_seconds,
                    call.conversed,
                    call.end_state,
                    call.created_at,
                    call.answered_at,
                    call.ended_at,
                    call.recording_url,
                ]
                for call in page
            ]
            before = page[-1].id

    maker = request.app.state.sessionmaker
    return await _csv_response("calls.csv", CALL_COLUMNS, rows(maker))


@router.get("/outcomes.csv", response_class=StreamingResponse, responses={200: _CSV})
async def export_outcomes(
    request: Request,
    principal: Analyst,
    session: SessionDep,
    where: Annotated[OutcomeFilter, Depends(outcome_filter)],
) -> StreamingResponse:
    """Every outcome ``GET /v1/outcomes`` would list with the same filters, newest first; the
    common fields have columns, ``data`` holds them all as JSON."""
    await _audit(session, principal, "exports.outcomes", asdict(where))

    async def rows(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[list[list[Any]]]:
        before: int | None = None
        while True:
            async with maker() as batch_session:
                page = await find_outcomes(batch_session, where, limit=BATCH, before_id=before)
                statuses = await promise_statuses(batch_session, [o.id for o, _ in page])
            if not page:
                return
            out = []
            for outcome, name in page:
                data = shown_data(principal, outcome.data, name)
                status = statuses.get(outcome.id, PENDING) if outcome.type == "promise" else None
                out.append(
                    [
                        outcome.id,
                        outcome.type,
                        outcome.created_at,
                        outcome.campaign_id,
                        outcome.call_id,
                        outcome.contact_id,
                        shown_name(principal, name),
                        status,
                        *(data.get(k) for k in ("amount", "currency", "date", "category")),
                        data.get("flag"),
                        data.get("text"),
                        json.dumps(data, ensure_ascii=False, sort_keys=True),
                    ]
                )
            yield out
            before = page[-1][0].id

    maker = request.app.state.sessionmaker
    return await _csv_response("outcomes.csv", OUTCOME_COLUMNS, rows(maker))


async def _audit(
    session: AsyncSession, principal: Principal, action: str, filters: dict[str, Any]
) -> None:
    audit.record(
        session,
        actor=principal.actor,
        action=action,
        target_type="export",
        target_id=None,
        details={"filters": {k: _plain(v) for k, v in filters.items() if v not in (None, ())}},
        now=datetime.now(UTC),
    )
    await session.commit()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


async def _csv_response(
    filename: str, columns: Sequence[str], batches: AsyncIterator[list[list[Any]]]
) -> StreamingResponse:
    # The first batch is read before the response starts, so a query the database refuses is
    # an error response (422, 500), not a download cut short after its header.
    first: list[list[Any]] = await anext(batches, [])

    async def body() -> AsyncIterator[bytes]:
        yield (_BOM + _lines([list(columns)], str) + _lines(first, _cell)).encode()
        async for batch in batches:
            yield _lines(batch, _cell).encode()

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _lines(rows: Iterable[Sequence[Any]], cell: Callable[[Any], Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([cell(v) for v in row] for row in rows)
    return buffer.getvalue()
