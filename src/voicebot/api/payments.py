"""``/v1/payments``: repayments from the lender (JSON or CSV), which judge promises to pay; and
each campaign's promise policy (grace days, follow-up call-backs for broken promises)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from voicebot.api.auth import Analyst, Operator
from voicebot.api.deps import SessionDep
from voicebot.api.errors import api_error, documented, not_found
from voicebot.db import audit
from voicebot.db.campaigns import get_campaign
from voicebot.db.models import PromisePolicy
from voicebot.db.promises import PaymentIn, judge_promises, store_payments
from voicebot.domain.contacts import (
    ContactFileError,
    UnsupportedCharset,
    charset_of,
    decode_upload,
)

router = APIRouter(tags=["payments"], responses=documented(401, 403))

MAX_PAYMENTS = 50_000
MAX_BYTES = 8 * 1024 * 1024

# An id as the lender writes it: no control characters (a NUL would be stored by SQLite and
# refused by PostgreSQL, without naming the row).
LenderId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


def _not_in_the_future(paid_on: date) -> date:
    """A payment is reported once made. A day of slack: the lender's date may be a day ahead
    of UTC's (Asia), never a year; a date further out is a typo that would judge promises."""
    latest = datetime.now(UTC).date() + timedelta(days=1)
    if paid_on > latest:
        raise PydanticCustomError(
            "future_date",
            "a payment date in the future: {paid_on} is after {latest}",
            {"paid_on": paid_on.isoformat(), "latest": latest.isoformat()},
        )
    return paid_on


class PaymentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loan_id: LenderId
    amount: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
    paid_on: Annotated[date, AfterValidator(_not_in_the_future)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    reference: LenderId | None = Field(
        default=None,
        description="The lender's id for the payment: a repeat of the same payment is stored "
        "once; the same reference for another loan, amount or date is refused",
    )


class PaymentsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payments: list[PaymentBody] = Field(min_length=1, max_length=MAX_PAYMENTS)


class JudgedOut(BaseModel):
    outcome_id: int
    contact_id: int
    loan_id: str
    status: str = Field(description="pending, kept, partly_kept or broken")
    promised: str
    paid: str
    follow_up_callback_id: int | None


class PaymentsOut(BaseModel):
    received: int
    stored: int
    duplicates: int = Field(description="Repeats of a payment already stored (same reference)")
    promises: list[JudgedOut] = Field(description="The unjudged promises of these loans")


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_days: int = Field(0, ge=0, le=60, description="Days after a promise's date it may pay")
    follow_up_broken: bool = Field(True, description="Call back when a promise is broken")
    follow_up_delay_hours: int = Field(24, ge=0, le=24 * 60)


class PolicyOut(PolicyBody):
    campaign_id: int
    updated_at: datetime | None


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": PaymentsBody.model_json_schema(),
                "example": {
                    "payments": [
                        {
                            "loan_id": "LN-1001",
                            "amount": "3500.00",
                            "paid_on": "2026-12-04",
                            "currency": "CNY",
                            "reference": "TX-88812",
                        }
                    ]
                },
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "loan_id,amount,paid_on,currency,reference\n"
                "LN-1001,3500.00,2026-12-04,CNY,TX-88812\n",
            },
        },
    }
}


@router.post(
    "/v1/payments",
    response_model=PaymentsOut,
    responses=documented(413, 415, 422),
    openapi_extra=_BODY,
)
async def post_payments(request: Request, principal: Operator, session: SessionDep) -> PaymentsOut:
    """Record payments as JSON ``{"payments": [...]}`` or CSV (columns loan_id, amount, paid_on,
    and optionally currency, reference; in the encodings a contacts CSV may be in, or the
    declared ``charset``). One bad row rejects the whole upload (422 naming the row and field;
    nothing stored). A reference names one payment: sent again for the same loan, amount and
    date it counts as a duplicate, for anything else it is refused naming both. The promises
    of the loans paid are judged at once."""
    content_type = request.headers.get("content-type")
    media = (content_type or "").partition(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_BYTES:
        raise api_error(413, "body_too_large", f"send at most {MAX_BYTES} bytes at once")
    if media == "application/json":
        (payments, rows), source = _from_json(body), "api"
    elif media in {"text/csv", "application/csv"}:
        (payments, rows), source = _from_csv(body, charset_of(content_type)), "csv"
    else:
        raise api_error(
            415,
            "unsupported_media_type",
            "send payments as application/json or text/csv",
            content_type=media,
        )
    _check_references(payments, rows)
    now = datetime.now(UTC)
    result = await store_payments(session, payments, source=source, now=now)
    if result.taken:
        await session.rollback()
        raise api_error(
            422,
            "reference_conflict",
            "a reference already stored names a different payment; nothing was stored",
            errors=[
                _row_error(
                    rows[t.position],
                    "reference",
                    f"reference {payments[t.position].reference!r} is already stored for a "
                    f"different payment (loan {t.loan_id}, {t.amount} paid on {t.paid_on})",
                )
                for t in result.taken
            ],
        )
    stored = result.stored
    judged = await judge_promises(
        session, today=now.date(), now=now, loan_ids={p.loan_id for p in payments}
    )
    audit.record(
        session,
        actor=principal.actor,
        action="payments.import",
        target_type="payments",
        target_id=None,
        details={"format": source, "received": len(payments), "stored": stored},
        now=now,
    )
    await session.commit()
    return PaymentsOut(
        received=len(payments),
        stored=stored,
        duplicates=len(payments) - stored,
        promises=[
            JudgedOut(
                outcome_id=j.outcome_id,
                contact_id=j.contact_id,
                loan_id=j.loan_id,
                status=j.status,
                promised=str(j.promised),
                paid=str(j.paid),
                follow_up_callback_id=j.follow_up_callback_id,
            )
            for j in judged
        ],
    )


# Where a payment came from: {"line": n} in a CSV file (the line its record starts on), or
# {"loc": ["payments", i]} in a JSON body, the shapes each format's errors already use.
Row = dict[str, Any]


def _from_json(body: bytes) -> tuple[list[PaymentIn], list[Row]]:
    try:
        parsed = PaymentsBody.model_validate_json(body)
    except ValidationError as exc:
        raise api_error(
            422,
            "invalid_payments",
            "the payments are not valid; nothing was stored",
            errors=[
                {"loc": list(e["loc"]), "reason": e["msg"]}
                for e in exc.errors(include_url=False, include_context=False)
            ],
        ) from None
    payments = [_payment(p) for p in parsed.payments]
    return payments, [{"loc": ["payments", i]} for i in range(len(payments))]


def _from_csv(body: bytes, charset: str | None) -> tuple[list[PaymentIn], list[Row]]:
    """The payments of a CSV file, read as strictly as a contacts file: the same encodings,
    malformed quoting and over-long cells refused naming the line, duplicate columns refused."""
    try:
        text = decode_upload(body, charset)
    except UnsupportedCharset as exc:
        raise api_error(415, exc.code, exc.message, **exc.details) from None
    except ContactFileError as exc:
        raise api_error(422, exc.code, exc.message, **exc.details) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header = _csv_header(_next_record(reader))
    allowed = set(PaymentBody.model_fields)
    errors: list[dict[str, Any]] = []
    payments: list[PaymentIn] = []
    rows: list[Row] = []
    read = 0
    while True:
        line = reader.line_num + 1
        cells = _next_record(reader)
        if cells is None:
            break
        if not any(cell.strip() for cell in cells):
            continue
        read += 1
        if read > MAX_PAYMENTS:
            raise api_error(413, "too_many_rows", f"send at most {MAX_PAYMENTS} payments at once")
        if len(cells) != len(header):
            reason = f"expected {len(header)} values as in the header, found {len(cells)}"
            errors.append({"line": line, "field": None, "reason": reason})
            continue
        values = {
            name: (cell.strip() or None)
            for name, cell in zip(header, cells, strict=True)
            if name in allowed
        }
        try:
            payments.append(_payment(PaymentBody.model_validate(values)))
            rows.append({"line": line})
        except ValidationError as exc:
            errors += [
                {
                    "line": line,
                    "field": str(e["loc"][0]) if e["loc"] else None,
                    "reason": e["msg"],
                }
                for e in exc.errors(include_url=False, include_context=False)
            ]
    if errors:
        raise api_error(
            422,
            "invalid_rows",
            f"{len(errors)} problem(s) in the CSV; nothing was stored",
            errors=errors,
        )
    if not payments:
        raise api_error(422, "empty", "the CSV holds no payments")
    return payments, rows


def _next_record(reader: Any) -> list[str] | None:
    """The next CSV record, None at the end; a malformed one (an unterminated quote, a cell
    over the csv module's limit) makes the rest unreadable: 422 naming its first line."""
    line = reader.line_num + 1
    try:
        cells: list[str] = next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise api_error(
            422,
            "malformed_csv",
            f"line {line}: {exc}; the file cannot be read past it",
            line=line,
        ) from None
    return cells


def _csv_header(cells: list[str] | None) -> list[str]:
    header = [cell.strip() for cell in cells or []]
    for position, name in enumerate(header, start=1):
        # Unnamed columns (a spreadsheet's trailing commas) are ignored, as unknown ones are.
        if name and name in header[: position - 1]:
            # Which of the two a spreadsheet meant cannot be known: neither is guessed.
            raise api_error(
                422,
                "invalid_columns",
                f"column {name!r} appears twice in the header",
                line=1,
                column=position,
            )
    required = {"loan_id", "amount", "paid_on"}
    if not required <= set(header):
        raise api_error(
            422,
            "missing_columns",
            f"the CSV header lacks {', '.join(sorted(required - set(header)))}",
            line=1,
        )
    return header


def _check_references(payments: list[PaymentIn], rows: list[Row]) -> None:
    """Refuse an upload in which one reference names two different payments: storing the
    first and counting the second a duplicate would lose a payment without a word."""
    first: dict[str, int] = {}
    errors: list[dict[str, Any]] = []
    for position, payment in enumerate(payments):
        if payment.reference is None:
            continue
        earlier = first.setdefault(payment.reference, position)
        other = payments[earlier]
        if earlier == position or payment.same_payment(other.loan_id, other.amount, other.paid_on):
            continue
        errors.append(
            {
                **_row_error(
                    rows[position],
                    "reference",
                    f"reference {payment.reference!r} is also {_label(rows[earlier])}'s, a "
                    "different payment (loan, amount or date): a reference names one payment",
                ),
                "conflicts_with": rows[earlier],
            }
        )
    if errors:
        raise api_error(
            422,
            "reference_conflict",
            f"{len(errors)} reference(s) name two different payments; nothing was stored",
            errors=errors,
        )


def _row_error(row: Row, field: str, reason: str) -> dict[str, Any]:
    if "line" in row:
        return {"line": row["line"], "field": field, "reason": reason}
    return {"loc": [*row["loc"], field], "reason": reason}


def _label(row: Row) -> str:
    if "line" in row:
        return f"line {row['line']}"
    _, index = row["loc"]
    return f"payments[{index}]"


def _payment(body: PaymentBody) -> PaymentIn:
    try:
        amount = body.amount.quantize(Decimal("0.01"))
    except InvalidOperation:  # pragma: no cover - bounded by max_digits
        raise api_error(422, "invalid_amount", "amount is out of range") from None
    return PaymentIn(
        loan_id=body.loan_id,
        amount=amount,
        paid_on=body.paid_on,
        currency=body.currency,
        reference=body.reference,
    )


@router.get(
    "/v1/campaigns/{campaign_id}/promise-policy",
    response_model=PolicyOut,
    responses=documented(404),
)
async def read_policy(campaign_id: int, _: Analyst, session: SessionDep) -> PolicyOut:
    """A campaign without a policy gives no grace and makes no follow-up call-backs."""
    if await get_campaign(session, campaign_id) is None:
        raise not_found("campaign", campaign_id)
    policy = await session.get(PromisePolicy, campaign_id)
    if policy is None:
        return PolicyOut(
            campaign_id=campaign_id, grace_days=0, follow_up_broken=False, updated_at=None
        )
    return _policy_out(policy)


@router.put(
    "/v1/campaigns/{campaign_id}/promise-policy",
    response_model=PolicyOut,
    responses=documented(404, 422),
)
async def write_policy(
    campaign_id: int, body: PolicyBody, principal: Operator, session: SessionDep
) -> PolicyOut:
    if await get_campaign(session, campaign_id) is None:
        raise not_found("campaign", campaign_id)
    now = datetime.now(UTC)
    policy = await session.get(PromisePolicy, campaign_id)
    if policy is None:
        policy = PromisePolicy(campaign_id=campaign_id)
        session.add(policy)
    policy.grace_days = body.grace_days
    policy.follow_up_broken = body.follow_up_broken
    policy.follow_up_delay_hours = body.follow_up_delay_hours
    policy.updated_at = now
    audit.record(
        session,
        actor=principal.actor,
        action="campaign.promise_policy",
        target_type="campaign",
        target_id=str(campaign_id),
        details=body.model_dump(),
        now=now,
    )
    await session.commit()
    return _policy_out(policy)


def _policy_out(policy: PromisePolicy) -> PolicyOut:
    return PolicyOut(
        campaign_id=policy.campaign_id,
        grace_days=policy.grace_days,
        follow_up_broken=policy.follow_up_broken,
        follow_up_delay_hours=policy.follow_up_delay_hours,
        updated_at=policy.updated_at,
    )
