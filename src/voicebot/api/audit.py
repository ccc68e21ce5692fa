"""``/v1/audit``: who did what (campaign state changes, imports, opt-outs). Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from voicebot.api.auth import Admin
from voicebot.api.deps import SessionDep
from voicebot.api.errors import documented
from voicebot.api.schemas import AuditOut, AuditPage
from voicebot.db.audit import list_entries

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=documented(401, 403))


@router.get("", response_model=AuditPage)
async def list_audit(
    _: Admin,
    session: SessionDep,
    action: Annotated[str | None, Query(max_length=64, description="e.g. campaign.start")] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditPage:
    """Newest first."""
    entries = await list_entries(
        session,
        limit=limit,
        offset=offset,
        action=action,
        target_type=target_type,
        target_id=target_id,
    )
    return AuditPage(
        items=[AuditOut.model_validate(e) for e in entries], limit=limit, offset=offset
    )
