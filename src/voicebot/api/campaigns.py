"""``/v1/campaigns``: create, read, list, edit while draft, the life cycle, and progress."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.api.auth import Analyst, Operator, Principal
from voicebot.api.deps import SessionDep
from voicebot.api.dialogs import unusable_dialog
from voicebot.api.errors import api_error, documented, not_found
from voicebot.api.schemas import (
    CallingWindowBody,
    CampaignCreate,
    CampaignOut,
    CampaignPage,
    CampaignUpdate,
    Progress,
)
from voicebot.calls.dialogs import DialogCatalog, DialogNotFound
from voicebot.db import audit
from voicebot.db.campaigns import (
    campaign_progress,
    cancel_callbacks,
    get_campaign,
    list_campaigns,
    name_taken,
)
from voicebot.db.models import Campaign
from voicebot.dialer.lifecycle import cancel_at_carrier, unanswered_call_sids
from voicebot.dialer.refusals import open_alarm
from voicebot.dialog import DialogInvalid
from voicebot.domain.campaigns import CampaignAction, InvalidTransition, is_editable, transition
from voicebot.domain.types import CampaignStatus
from voicebot.telephony.carrier import Carrier

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], responses=documented(401, 403))


def campaign_out(campaign: Campaign) -> CampaignOut:
    """The stored campaign as the API shows it (stored rows are trusted: not re-validated)."""
    window = CallingWindowBody.model_construct(
        start=campaign.window_start,
        end=campaign.window_end,
        weekdays=list(campaign.window_weekdays),
    )
    return CampaignOut.model_construct(
        id=campaign.id,
        name=campaign.name,
        dialog_id=campaign.dialog_id,
        status=campaign.status,
        calling_window=window,
        max_attempts=campaign.max_attempts,
        max_attempts_per_period=campaign.max_attempts_per_period,
        attempt_period_days=campaign.attempt_period_days,
        max_conversations_per_day=campaign.max_conversations_per_day,
        quiet_period_hours=campaign.quiet_period_hours,
        retry_delays=dict(campaign.retry_delays or {}),
        switch_number_after=campaign.switch_number_after,
        concurrency_limit=campaign.concurrency_limit,
        caller_numbers=list(campaign.caller_numbers or []),
        caller_id_mode=campaign.caller_id_mode,
        ring_timeout_seconds=campaign.ring_timeout_seconds,
        time_limit_seconds=campaign.time_limit_seconds,
        machine_detection=campaign.machine_detection,
        machine_action=campaign.machine_action,
        record_calls=campaign.record_calls,
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
    )


def _columns(body: CampaignCreate) -> dict[str, Any]:
    window = body.calling_window
    return {
        "name": body.name,
        "dialog_id": body.dialog_id,
        "window_start": window.start,
        "window_end": window.end,
        "window_weekdays": list(window.weekdays),
        "max_attempts": body.max_attempts,
        "max_attempts_per_period": body.max_attempts_per_period,
        "attempt_period_days": body.attempt_period_days,
        "max_conversations_per_day": body.max_conversations_per_day,
        "quiet_period_hours": body.quiet_period_hours,
        "retry_delays": dict(body.retry_delays),
        "switch_number_after": body.switch_number_after,
        "concurrency_limit": body.concurrency_limit,
        "caller_numbers": list(body.caller_numbers),
        "caller_id_mode": body.caller_id_mode.value,
        "ring_timeout_seconds": body.ring_timeout_seconds,
        "time_limit_seconds": body.time_limit_seconds,
        "machine_detection": body.machine_detection.value,
        "machine_action": body.machine_action.value,
        "record_calls": body.record_calls,
    }


async def _check_dialog(dialogs: DialogCatalog, dialog_id: str, *, status: int = 422) -> None:
    """Refuse a dialog the calls could not run: unknown, or failing its checks. Found only once
    a borrower had answered, it would have dialed people to silence."""
    try:
        await dialogs.check(dialog_id)
    except (DialogNotFound, DialogInvalid) as exc:
        raise await unusable_dialog(dialogs, dialog_id, exc, status=status) from None


def _name_conflict(name: str) -> Exception:
    return api_error(409, "name_taken", f"a campaign named {name!r} already exists")


async def _load(session: AsyncSession, campaign_id: int, *, lock: bool = False) -> Campaign:
    campaign = await get_campaign(session, campaign_id, lock="update" if lock else None)
    if campaign is None:
        raise not_found("campaign", campaign_id)
    return campaign


@router.post("", status_code=201, response_model=CampaignOut, responses=documented(409))
async def create_campaign(
    body: CampaignCreate, principal: Operator, session: SessionDep, request: Request
) -> CampaignOut:
    """A new campaign, in draft. Settings left out take the defaults shown in the schema."""
    if await name_taken(session, body.name):
        raise _name_conflict(body.name)
    await _check_dialog(request.app.state.calls.dialogs, body.dialog_id)
    now = datetime.now(UTC)
    campaign = Campaign(
        **_columns(body), status=CampaignStatus.DRAFT.value, created_at=now, updated_at=now
    )
    session.add(campaign)
    try:
        await session.flush()
    except IntegrityError:
        raise _name_conflict(body.name) from None
    audit.record(
        session,
        actor=principal.actor,
        action="campaign.create",
        target_type="campaign",
        target_id=str(campaign.id),
        details={"name": campaign.name, "dialog_id": campaign.dialog_id},
        now=now,
    )
    await session.commit()
    return campaign_out(campaign)


@router.get("", response_model=CampaignPage)
async def list_all(
    _: Analyst,
    session: SessionDep,
    status: CampaignStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CampaignPage:
    """Newest first."""
    items, total = await list_campaigns(session, limit=limit, offset=offset, status=status)
    return CampaignPage(
        items=[campaign_out(c) for c in items], total=total, limit=limit, offset=offset
    )


@router.get("/{campaign_id}", response_model=CampaignOut, responses=documented(404))
async def read_campaign(campaign_id: int, _: Analyst, session: SessionDep) -> CampaignOut:
    return campaign_out(await _load(session, campaign_id))


@router.patch("/{campaign_id}", response_model=CampaignOut, responses=documented(404, 409))
async def update_campaign(
    campaign_id: int,
    body: CampaignUpdate,
    principal: Operator,
    session: SessionDep,
    request: Request,
) -> CampaignOut:
    """Change settings of a draft; once started, a campaign keeps the rules it started with."""
    campaign = await _load(session, campaign_id, lock=True)
    if not is_editable(CampaignStatus(campaign.status)):
        raise api_error(
            409,
            "campaign_not_draft",
            f"the campaign is {campaign.status}; only a draft can be changed",
            status=campaign.status,
        )
    changes = body.model_dump(exclude_unset=True)
    changed = sorted(changes)
    merged_fields = campaign_out(campaign).model_dump(
        include=set(CampaignCreate.model_fields), mode="json"
    )
    window_changes = changes.pop("calling_window", None) or {}
    merged_fields.update(changes)
    merged_fields["calling_window"].update(window_changes)
    try:
        merged = CampaignCreate.model_validate(merged_fields)
    except ValidationError as exc:
        # Reported as the request's own validation error: the same 422 as a bad POST.
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None
    if merged.name != campaign.name and await name_taken(
        session, merged.name, other_than=campaign.id
    ):
        raise _name_conflict(merged.name)
    if "dialog_id" in changes:
        await _check_dialog(request.app.state.calls.dialogs, merged.dialog_id)
    now = datetime.now(UTC)
    for column, value in _columns(merged).items():
        setattr(campaign, column, value)
    campaign.updated_at = now
    audit.record(
        session,
        actor=principal.actor,
        action="campaign.update",
        target_type="campaign",
        target_id=str(campaign.id),
        details={"changed": changed},
        now=now,
    )
    try:
        await session.commit()
    except IntegrityError:
        raise _name_conflict(merged.name) from None
    return campaign_out(campaign)


async def _change_state(
    session: AsyncSession,
    campaign_id: int,
    action: CampaignAction,
    principal: Principal,
    carrier: Carrier | None = None,
    *,
    dialogs: DialogCatalog | None = None,
) -> CampaignOut:
    """Apply ``action``. Pausing or cancelling also cancels, at ``carrier``, the campaign's calls
    still queued or ringing (answered ones finish). Running again needs ``dialogs`` to still have
    a usable dialog for it (409 when its file went or broke since)."""
    now = datetime.now(UTC)
    cancelled: int | None = None
    if action is CampaignAction.CANCEL:
        # Call-backs before the campaign row: the dialer and the lifecycle lock in that order,
        # so the other way round deadlocks with a call ending or a batch being dialed. A
        # refused transition below rolls this back with the rest.
        await _load(session, campaign_id)
        cancelled = await cancel_callbacks(session, campaign_id, now=now)
    campaign = await _load(session, campaign_id, lock=True)
    before = CampaignStatus(campaign.status)
    try:
        after = transition(before, action)
    except InvalidTransition as exc:
        raise api_error(409, "invalid_transition", exc.reason, status=before.value) from None
    if after is CampaignStatus.RUNNING and (alarm := await open_alarm(session)) is not None:
        raise api_error(
            409,
            "carrier_alarm",
            f"dialing is stopped: the carrier refused this service (code {alarm.code}, "
            f"{alarm.raised_at:%Y-%m-%d %H:%M} UTC); fix the credentials or caller numbers and "
            "clear the alarm (voicebot twilio clear-alarm) first",
            status=before.value,
            carrier_error=alarm.code,
        )
    if after is CampaignStatus.RUNNING and dialogs is not None:
        await _check_dialog(dialogs, campaign.dialog_id, status=409)
    details: dict[str, Any] = {"from": before.value, "to": after.value}
    campaign.status = after.value
    campaign.updated_at = now
    if after is CampaignStatus.RUNNING and campaign.started_at is None:
        campaign.started_at = now
    if after in (CampaignStatus.CANCELLED, CampaignStatus.COMPLETED):
        campaign.finished_at = now
    if cancelled is not None:
        details["callbacks_cancelled"] = cancelled
    ringing: list[str] = []
    if after in (CampaignStatus.PAUSED, CampaignStatus.CANCELLED):
        ringing = await unanswered_call_sids(session, campaign.id)
        details["calls_cancelled"] = len(ringing)
    audit.record(
        session,
        actor=principal.actor,
        action=f"campaign.{action.value}",
        target_type="campaign",
        target_id=str(campaign.id),
        details=details,
        now=now,
    )
    await session.commit()
    out = campaign_out(campaign)
    if ringing and carrier is not None:
        await cancel_at_carrier(carrier, ringing)
    return out


_TRANSITION_RESPONSES = documented(404, 409)


@router.post("/{campaign_id}/start", response_model=CampaignOut, responses=_TRANSITION_RESPONSES)
async def start(
    campaign_id: int, principal: Operator, session: SessionDep, request: Request
) -> CampaignOut:
    """draft → running: the dialer starts calling its due call-backs. 409 when the campaign's
    dialog can no longer be run (its file removed or broken since)."""
    return await _change_state(
        session,
        campaign_id,
        CampaignAction.START,
        principal,
        dialogs=request.app.state.calls.dialogs,
    )


@router.post("/{campaign_id}/pause", response_model=CampaignOut, responses=_TRANSITION_RESPONSES)
async def pause(
    campaign_id: int, principal: Operator, session: SessionDep, request: Request
) -> CampaignOut:
    """running → paused: no new dials; calls still queued or ringing are cancelled at the
    carrier; calls in progress finish."""
    return await _change_state(
        session, campaign_id, CampaignAction.PAUSE, principal, request.app.state.carrier
    )


@router.post("/{campaign_id}/resume", response_model=CampaignOut, responses=_TRANSITION_RESPONSES)
async def resume(
    campaign_id: int, principal: Operator, session: SessionDep, request: Request
) -> CampaignOut:
    """paused → running; 409 when the campaign's dialog can no longer be run."""
    return await _change_state(
        session,
        campaign_id,
        CampaignAction.RESUME,
        principal,
        dialogs=request.app.state.calls.dialogs,
    )


@router.post("/{campaign_id}/cancel", response_model=CampaignOut, responses=_TRANSITION_RESPONSES)
async def cancel(
    campaign_id: int, principal: Operator, session: SessionDep, request: Request
) -> CampaignOut:
    """Ends the campaign for good: pending and claimed call-backs are cancelled, and so are, at
    the carrier, calls still queued or ringing; calls in progress finish normally."""
    return await _change_state(
        session, campaign_id, CampaignAction.CANCEL, principal, request.app.state.carrier
    )


@router.get("/{campaign_id}/progress", response_model=Progress, responses=documented(404))
async def progress(campaign_id: int, _: Analyst, session: SessionDep) -> Progress:
    campaign = await _load(session, campaign_id)
    counts = await campaign_progress(session, campaign.id)
    return Progress(
        campaign_id=campaign.id,
        status=campaign.status,
        contacts=counts.contacts,
        callbacks=counts.callbacks,
        calls=counts.calls,
        live_calls=counts.live_calls,
    )
