"""``/v1/payments``: repayments from the lender (JSON or CSV), which judge promises to pay; and
each campaign's promise policy (grace days, follow-up call-backs for broken promises)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from voicebot.api.auth import Analyst, Operator
from voicebot.api.deps import SessionDep
from voicebot.api.errors import api_error, documented, not_found
from voicebot.db import audit
from voicebot.db.campaigns import get_campaign
from voicebot.db.models import PromisePolicy
from voicebot.db.promises import PaymentIn, judge_promises, store_payments

router = APIRouter(tags=["payments"], responses=documented(401, 403))

MAX_PAYMENTS = 50_000
MAX_BYTES = 8 * 1024 * 1024

LoanId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class PaymentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loan_id: LoanId
    amount: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
    paid_on: date
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    reference: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
        | None
    ) = Field(default=None, description="The lender's id for it: a repeat is stored once")


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
    duplicates: int = Field(description="Payments whose reference was already stored")
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
    and optionally currency, reference). One bad row rejects the whole upload (422 naming the
    row and field; nothing stored). The promises of the loans paid are judged at once."""
    media = (request.headers.get("content-type") or "").partition(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_BYTES:
        raise api_error(413, "body_too_large", f"send at most {MAX_BYTES} bytes at once")
    if media == "application/json":
        payments, source = _from_json(body), "api"
    elif media in {"text/csv", "application/csv"}:
        payments, source = _from_csv(body), "csv"
    else:
        raise api_error(
            415,
            "unsupported_media_type",
            "send payments as application/json or text/csv",
            content_type=media,
        )
    now = datetime.now(UTC)
    stored = await store_payments(session, payments, source=source, now=now)
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


def _from_json(body: bytes) -> list[PaymentIn]:
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
    return [_payment(p) for p in parsed.payments]


def _from_csv(body: bytes) -> list[PaymentIn]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise api_error(
            422, "invalid_encoding", f"the CSV is not UTF-8 (byte {exc.start})"
        ) from None
    reader = csv.DictReader(io.StringIO(text))
    required = {"loan_id", "amount", "paid_on"}
    header = {(name or "").strip() for name in reader.fieldnames or []}
    if not required <= header:
        raise api_error(
            422,
            "missing_columns",
            f"the CSV header lacks {', '.join(sorted(required - header))}",
            line=1,
        )
    allowed = set(PaymentBody.model_fields)
    errors: list[dict[str, Any]] = []
    payments: list[PaymentIn] = []
    for row in reader:
        if None in row:
            errors.append(
                {
                    "line": reader.line_num,
                    "field": None,
                    "reason": f"more values than the header's {len(reader.fieldnames or [])}",
                }
            )
            continue
        if len(payments) + len(errors) >= MAX_PAYMENTS:
            raise api_error(413, "too_many_rows", f"send at most {MAX_PAYMENTS} payments at once")
        values = {
            k.strip(): (v.strip() or None)
            for k, v in row.items()
            if k is not None and k.strip() in allowed and isinstance(v, str)
        }
        try:
            payments.append(_payment(PaymentBody.model_validate(values)))
        except ValidationError as exc:
            errors += [
                {
                    "line": reader.line_num,
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
    return payments


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
