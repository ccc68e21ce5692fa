"""The audit log: who did what to which campaign, import, key or number."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import AuditEntry


def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None,
    details: dict[str, Any],
    now: datetime,
) -> None:
    """Add an entry to the session; it is written with the caller's commit, so an action and
    its audit entry are stored together or not at all."""
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details,
        )
    )


async def list_entries(
    session: AsyncSession,
    *,
    limit: int,
    offset: int = 0,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
) -> Sequence[AuditEntry]:
    """Newest first."""
    query = select(AuditEntry)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if target_type is not None:
        query = query.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == target_id)
    query = query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit).offset(offset)
    return (await session.scalars(query)).all()
