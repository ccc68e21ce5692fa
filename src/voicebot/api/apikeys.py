"""``/v1/api-keys``: the API's keys, for admins. A key is named by its prefix (``vb_<prefix>_…``);
its secret is shown once, when it is made, and never stored. Every change goes in the audit log.

A revoked key or a new role takes effect at once in the process that made the change, and in the
others once what they verified of the key expires (``VOICEBOT_API_KEY_CACHE_SECONDS``). The last
live admin key can be neither revoked nor demoted: keys are managed with one.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.api.auth import Admin, VerifiedKeys
from voicebot.api.deps import SessionDep
from voicebot.api.errors import api_error, documented
from voicebot.api.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyList, ApiKeyOut, ApiKeyRoleIn
from voicebot.db.apikeys import (
    PREFIX_PATTERN,
    LastAdminKey,
    create_audited_api_key,
    list_api_keys,
    revoke_api_key,
    set_api_key_role,
)
from voicebot.db.models import ApiKey

router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"], responses=documented(401, 403))

Prefix = Annotated[
    str,
    Path(
        pattern=f"^{PREFIX_PATTERN.pattern}$",
        description="The key's prefix: vb_<prefix>_…",
        examples=["3f9a0c1d2e4b"],
    ),
]


@router.get("", response_model=ApiKeyList)
async def list_keys(
    _: Admin,
    session: SessionDep,
    include_revoked: Annotated[bool, Query(description="Revoked keys too")] = False,
) -> ApiKeyList:
    """Newest first: prefix, name, role and dates, never a secret."""
    keys = await list_api_keys(session, include_revoked=include_revoked)
    return ApiKeyList(items=[ApiKeyOut.model_validate(k) for k in keys])


@router.post("", status_code=201, response_model=ApiKeyCreated, responses=documented(422))
async def create_key(body: ApiKeyIn, principal: Admin, session: SessionDep) -> ApiKeyCreated:
    """A new key, returned whole this once: store it now, it cannot be shown again."""
    secret, key = create_audited_api_key(
        session, role=body.role, name=body.name, actor=principal.actor, now=datetime.now(UTC)
    )
    await session.commit()
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=secret)


@router.patch("/{prefix}", response_model=ApiKeyOut, responses=documented(404, 409, 422))
async def change_role(
    prefix: Prefix, body: ApiKeyRoleIn, principal: Admin, session: SessionDep, request: Request
) -> ApiKeyOut:
    """Give a live key another role."""
    change = set_api_key_role(
        session,
        prefix,
        body.role,
        actor=principal.actor,
        now=datetime.now(UTC),
        keep_an_admin=True,
    )
    return await _changed(session, request, change, prefix)


@router.post("/{prefix}/revoke", response_model=ApiKeyOut, responses=documented(404, 409, 422))
async def revoke_key(
    prefix: Prefix, principal: Admin, session: SessionDep, request: Request
) -> ApiKeyOut:
    """Revoke a live key for good; the row stays, for the audit log's sake."""
    change = revoke_api_key(
        session, prefix, actor=principal.actor, now=datetime.now(UTC), keep_an_admin=True
    )
    return await _changed(session, request, change, prefix)


async def _changed(
    session: AsyncSession,
    request: Request,
    change: Awaitable[ApiKey | None],
    prefix: str,
) -> ApiKeyOut:
    """Make ``change``, commit it, and drop this process's verification of the key."""
    try:
        key = await change
    except LastAdminKey as exc:
        raise api_error(409, "last_admin", str(exc)) from None
    if key is None:
        raise api_error(404, "not_found", f"no live API key has the prefix {prefix}")
    await session.commit()
    verified: VerifiedKeys = request.app.state.verified_keys
    verified.forget(key.id)
    return ApiKeyOut.model_validate(key)
