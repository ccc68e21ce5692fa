"""Contacts: the import into a campaign (JSON or CSV), and reading contacts back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator

from voicebot.api.auth import Analyst, Operator, Principal
from voicebot.api.deps import SessionDep, SettingsDep
from voicebot.api.dialogs import unusable_dialog
from voicebot.api.errors import api_error, documented, not_found
from voicebot.api.schemas import (
    CallBackOut,
    ContactOut,
    ContactPage,
    ImportOut,
    NotDialableOut,
    PhoneOut,
    RowErrorOut,
)
from voicebot.calls.dialogs import DialogNotFound
from voicebot.calls.records import contact_json
from voicebot.calls.services import CallServices
from voicebot.db import audit
from voicebot.db.campaigns import get_campaign
from voicebot.db.contacts import contact_callbacks, find_contacts, get_contact, import_contacts
from voicebot.db.models import CallBack, Contact
from voicebot.dialog import DialogInvalid, field_problems
from voicebot.domain.campaigns import accepts_contacts
from voicebot.domain.contacts import (
    ContactCheck,
    ContactFileError,
    ContactRow,
    TooManyRows,
    UnsupportedCharset,
    UploadFormat,
    charset_of,
    check_region,
    parse_upload,
)
from voicebot.domain.privacy import mask_name, mask_phone, mask_text
from voicebot.domain.types import CampaignStatus

log = logging.getLogger(__name__)

router = APIRouter(tags=["contacts"], responses=documented(401, 403))


class ImportMode(StrEnum):
    ALL_OR_NOTHING = "all_or_nothing"
    SKIP_INVALID = "skip_invalid"


_MEDIA_TYPES: dict[str, UploadFormat] = {
    "application/json": "json",
    "text/csv": "csv",
    "application/csv": "csv",
    "text/plain": "csv",
}

_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["contacts"],
                    "properties": {"contacts": {"type": "array", "items": {"type": "object"}}},
                },
                "example": {
                    "contacts": [
                        {
                            "external_id": "L-1001",
                            "name": "张三",
                            "phone": "13812345678",
                            "alternate_phones": ["+8613912345678"],
                            "loan_id": "LN-1001",
                            "amount_due": "1200.00",
                            "currency": "CNY",
                            "due_date": "2026-07-01",
                            "days_past_due": 12,
                            "persona": "answers",
                        }
                    ]
                },
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "external_id,name,phone,alternate_phones,amount_due,currency\n"
                "L-1001,张三,13812345678,+8613912345678;+8613712345678,1200.00,CNY\n",
            },
        },
    }
}


@router.post(
    "/v1/campaigns/{campaign_id}/contacts",
    response_model=ImportOut,
    responses=documented(404, 409, 413, 415, 422),
    openapi_extra=_IMPORT_BODY,
)
async def import_into_campaign(
    campaign_id: int,
    request: Request,
    principal: Operator,
    session: SessionDep,
    settings: SettingsDep,
    mode: ImportMode = ImportMode.ALL_OR_NOTHING,
    default_region: Annotated[
        str | None,
        AfterValidator(lambda v: None if v is None else check_region(v)),
        Query(description="Region of national-format numbers, e.g. CN"),
    ] = None,
) -> ImportOut:
    """Import borrowers as JSON ``{"contacts": [...]}`` or CSV (UTF-8 with or without BOM,
    UTF-16 with BOM, or GBK/GB18030; a ``charset`` parameter is honoured, and is needed for
    any other encoding such as Windows-1252). Keys/columns: external_id, name, phone
    (required), alternate_phones (JSON list, or ``;``-separated in CSV), time_zone (else taken
    from the number), loan_id, amount_due, currency, due_date, days_past_due; any other key or
    column is kept in the contact's ``fields``.

    By default one bad row rejects the upload (422, nothing stored); ``mode=skip_invalid``
    imports the good rows and reports the bad. An external_id imported before is updated, not
    duplicated. Each contact gets a pending call-back in the campaign unless it already has an
    unfinished one there; numbers on the do-not-call list are stored opted out.
    """
    upload_format, charset = _upload_format(request.headers.get("content-type"))
    campaign = await get_campaign(session, campaign_id)
    if campaign is None:
        raise not_found("campaign", campaign_id)
    _check_accepts_contacts(CampaignStatus(campaign.status))
    check = await _dialog_check(request, campaign.dialog_id)
    # Nothing is held open while the body is read and validated, which takes seconds.
    await session.rollback()

    started = time.monotonic()
    body = await _read_body(request, settings.import_max_bytes)
    received = time.monotonic()
    try:
        # Pure-Python validation (phonenumbers) is CPU-bound: seconds for a large upload.
        upload = await asyncio.to_thread(
            parse_upload,
            body,
            upload_format=upload_format,
            charset=charset,
            default_region=default_region,
            max_rows=settings.import_max_rows,
            check=check,
        )
    except UnsupportedCharset as exc:
        raise api_error(415, exc.code, exc.message, **exc.details) from None
    except ContactFileError as exc:
        raise api_error(422, exc.code, exc.message, **exc.details) from None
    except TooManyRows as exc:
        raise api_error(
            413,
            "too_many_rows",
            f"{exc}; split it into uploads of {exc.limit} rows at most",
            max_rows=exc.limit,
        ) from None
    del body
    validated = time.monotonic()
    if upload.errors and mode is ImportMode.ALL_OR_NOTHING:
        raise api_error(
            422,
            "invalid_rows",
            f"{upload.rejected} of {upload.received} rows are invalid; nothing was imported "
            "(mode=skip_invalid imports the valid rows)",
            received=upload.received,
            errors=[{"row": e.row, "field": e.field, "reason": e.reason} for e in upload.errors],
        )

    campaign = await get_campaign(session, campaign_id, lock="key_share")
    if campaign is None:
        raise not_found("campaign", campaign_id)
    _check_accepts_contacts(CampaignStatus(campaign.status))
    now = datetime.now(UTC)
    result = await import_contacts(
        session, campaign_id=campaign.id, contacts=upload.contacts, now=now
    )
    # On SQLite the first write above took the database's write lock; only now is the status
    # read here certain to stay as read until commit (PostgreSQL's row lock held it already).
    await session.refresh(campaign, ["status"])
    _check_accepts_contacts(CampaignStatus(campaign.status))
    audit.record(
        session,
        actor=principal.actor,
        action="contacts.import",
        target_type="campaign",
        target_id=str(campaign.id),
        details={
            "mode": mode.value,
            "format": upload_format,
            "received": upload.received,
            "created": result.created,
            "updated": result.updated,
            "skipped": upload.rejected,
            "callbacks_created": result.callbacks_created,
            "opted_out_phones": result.opted_out_phones,
        },
        now=now,
    )
    await session.commit()
    log.info(
        "imported %d contacts into campaign %d (%d created, %d updated, %d rows skipped) in "
        "%.1f s: %.1f s reading, %.1f s validating, %.1f s storing",
        len(upload.contacts),
        campaign.id,
        result.created,
        result.updated,
        upload.rejected,
        time.monotonic() - started,
        received - started,
        validated - received,
        time.monotonic() - validated,
    )
    return ImportOut(
        received=upload.received,
        created=result.created,
        updated=result.updated,
        skipped=upload.rejected,
        callbacks_created=result.callbacks_created,
        opted_out_phones=result.opted_out_phones,
        not_dialable=[
            NotDialableOut(external_id=n.external_id, row=n.row, reason=n.reason)
            for n in result.not_dialable
        ],
        errors=[RowErrorOut(row=e.row, field=e.field, reason=e.reason) for e in upload.errors],
    )


async def _dialog_check(request: Request, dialog_id: str) -> ContactCheck:
    """The check of each contact against the fields the campaign's dialog needs, loaded the way
    a call loads it: a contact it cannot call would otherwise fail only once the borrower has
    answered. A campaign whose dialog cannot be loaded takes no contacts (409): none could be
    called, and none can be checked."""
    services: CallServices = request.app.state.calls
    try:
        dialog = await services.dialogs.get(dialog_id, prerender=False)
    except (DialogNotFound, DialogInvalid) as exc:
        raise await unusable_dialog(services.dialogs, dialog_id, exc, status=409) from None
    script = dialog.script

    def check(contact: ContactRow) -> list[tuple[str, str]]:
        return [
            (
                problem.name,
                f"required by the campaign's dialog {dialog_id}"
                if problem.missing
                else f"{problem.reason} (the campaign's dialog {dialog_id} reads it as "
                f"{script.fields[problem.name].type})",
            )
            for problem in field_problems(script, contact_json(contact))
        ]

    return check


def _check_accepts_contacts(status: CampaignStatus) -> None:
    if not accepts_contacts(status):
        raise api_error(
            409,
            "campaign_finished",
            f"the campaign is {status}; contacts can no longer be imported into it",
            status=status.value,
        )


def _upload_format(content_type: str | None) -> tuple[UploadFormat, str | None]:
    """The upload's format and declared charset, from its Content-Type."""
    media, _, _ = (content_type or "").partition(";")
    upload_format = _MEDIA_TYPES.get(media.strip().lower())
    if upload_format is None:
        raise api_error(
            415,
            "unsupported_media_type",
            "send contacts as application/json or text/csv",
            content_type=content_type,
        )
    return upload_format, charset_of(content_type)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes:
    from Content-Length before reading, else while the stream arrives."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> Exception:
    return api_error(
        413, "body_too_large", f"the upload is larger than {limit} bytes", max_bytes=limit
    )


@router.get("/v1/contacts/{contact_id}", response_model=ContactOut, responses=documented(404))
async def read_contact(contact_id: int, principal: Analyst, session: SessionDep) -> ContactOut:
    """One contact with its numbers and its call-backs in every campaign."""
    contact = await get_contact(session, contact_id)
    if contact is None:
        raise not_found("contact", contact_id)
    callbacks = await contact_callbacks(session, contact.id)
    return _contact_out(contact, principal, callbacks=callbacks)


@router.get("/v1/contacts", response_model=ContactPage)
async def list_contacts(
    principal: Analyst,
    session: SessionDep,
    external_id: Annotated[str | None, Query(max_length=128)] = None,
    campaign_id: Annotated[int | None, Query(description="Contacts called in it")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ContactPage:
    contacts = await find_contacts(
        session, limit=limit, offset=offset, external_id=external_id, campaign_id=campaign_id
    )
    return ContactPage(
        items=[_contact_out(c, principal) for c in contacts], limit=limit, offset=offset
    )


def _contact_out(
    contact: Contact, principal: Principal, *, callbacks: Sequence[CallBack] | None = None
) -> ContactOut:
    show = principal.sees_phone_numbers
    fields = dict(contact.fields or {})
    return ContactOut(
        id=contact.id,
        external_id=contact.external_id,
        name=contact.name if show else mask_name(contact.name),
        time_zone=contact.time_zone,
        loan_id=contact.loan_id,
        amount_due=contact.amount_due,
        currency=contact.currency,
        due_date=contact.due_date,
        days_past_due=contact.days_past_due,
        # Columns an import added (an address, a second contact's number): numbers and the
        # borrower's name masked inside them too.
        fields=fields
        if show
        else {
            k: mask_text(v, contact.name) if isinstance(v, str) else v for k, v in fields.items()
        },
        phones=[
            PhoneOut(
                number=p.e164 if show else mask_phone(p.e164),
                position=p.position,
                status=p.status,
                consecutive_failures=p.consecutive_failures,
            )
            for p in contact.phones
        ],
        created_at=contact.created_at,
        updated_at=contact.updated_at,
        callbacks=None if callbacks is None else [_callback_out(c) for c in callbacks],
    )


def _callback_out(callback: CallBack) -> CallBackOut:
    return CallBackOut(
        id=callback.id,
        campaign_id=callback.campaign_id,
        status=callback.status,
        reason=callback.reason,
        attempt=callback.attempt,
        due_at=callback.due_at,
        deferred_reason=callback.deferred_reason,
    )
