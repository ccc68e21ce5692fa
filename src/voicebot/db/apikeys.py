"""API keys: ``vb_<prefix>_<secret>``. Only the SHA-256 of the whole key is stored; the prefix
finds the row, so checking a key costs one indexed lookup and a constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db import audit
from voicebot.db.models import ApiKey
from voicebot.domain.types import Role

KEY_SCHEME = "vb"
_PREFIX_BYTES = 6  # 12 hex characters: unique enough to find a row, useless to guess a key
# What names a key in listings, the audit log and the API's paths: never the secret.
PREFIX_PATTERN = re.compile(f"[0-9a-f]{{{2 * _PREFIX_BYTES}}}")
_NAME_LENGTH = 200  # api_keys.name
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_key_name(name: str) -> str:
    """A key's name stripped: one line of printable text, 1 to 200 characters, as listings and
    the audit log show it. ValueError says what is wrong."""
    name = name.strip()
    if not 1 <= len(name) <= _NAME_LENGTH:
        raise ValueError(f"a key's name is 1 to {_NAME_LENGTH} characters")
    if _CONTROL.search(name):
        raise ValueError("a key's name is one line of printable text (no control characters)")
    return name


def create_api_key(session: AsyncSession, *, role: Role, name: str) -> str:
    """Add a key (the caller commits) and return it in plaintext: it is never shown again.

    Synchronous on purpose: it only adds a row to the session.
    """
    prefix = secrets.token_hex(_PREFIX_BYTES)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    session.add(
        ApiKey(
            name=name,
            prefix=prefix,
            key_hash=key_digest(key),
            role=role.value,
            created_at=datetime.now(UTC),
        )
    )
    return key


def create_audited_api_key(
    session: AsyncSession, *, role: Role, name: str, actor: str, now: datetime
) -> tuple[str, ApiKey]:
    """:func:`create_api_key`, in the audit log as ``actor``'s doing (the caller commits): the
    key in plaintext, and its row."""
    key = create_api_key(session, role=role, name=name)
    prefix = key_prefix(key)
    assert prefix is not None  # made just now, well formed
    _audit(session, actor, "apikey.create", prefix, {"name": name, "role": role.value}, now)
    row = next(r for r in session.new if isinstance(r, ApiKey) and r.prefix == prefix)
    return key, row


async def authenticate(session: AsyncSession, presented: str) -> ApiKey | None:
    """The live (not revoked) key ``presented`` is, or None."""
    prefix = key_prefix(presented)
    if prefix is None:
        return None
    key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.key_hash, key_digest(presented)):
        return None
    return key


async def list_api_keys(session: AsyncSession, *, include_revoked: bool) -> Sequence[ApiKey]:
    """Keys newest first: the live ones, or every key ever made."""
    query = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return (await session.scalars(query)).all()


async def live_api_key(session: AsyncSession, prefix: str) -> ApiKey | None:
    """The key with ``prefix`` unless there is none or it is revoked."""
    key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    return None if key is None or key.revoked_at is not None else key


class LastAdminKey(Exception):
    """Revoking or demoting the only live admin key would leave nobody able to manage keys,
    notifications or the carrier alarm over the API."""


async def _refuse_last_admin(session: AsyncSession, key: ApiKey, verb: str) -> None:
    """Raise LastAdminKey when ``key`` is the only live admin key. The live admin keys stay
    locked until the caller's transaction ends (PostgreSQL), so two admins revoking each other
    at once cannot both pass this check."""
    if key.role != Role.ADMIN.value:
        return
    admins = await session.scalars(
        select(ApiKey.id)
        .where(ApiKey.role == Role.ADMIN.value, ApiKey.revoked_at.is_(None))
        .with_for_update()
    )
    if len(admins.all()) == 1:
        raise LastAdminKey(f"cannot {verb} the only live admin key; create another admin key first")


async def revoke_api_key(
    session: AsyncSession, prefix: str, *, actor: str, now: datetime, keep_an_admin: bool = False
) -> ApiKey | None:
    """Revoke the key with ``prefix``, in the audit log as ``actor``'s doing (the caller
    commits); None when there is no live one. ``keep_an_admin``: LastAdminKey rather than
    revoke the only live admin key."""
    key = await live_api_key(session, prefix)
    if key is not None:
        if keep_an_admin:
            await _refuse_last_admin(session, key, "revoke")
        key.revoked_at = now
        _audit(session, actor, "apikey.revoke", prefix, {"name": key.name, "role": key.role}, now)
    return key


async def set_api_key_role(
    session: AsyncSession,
    prefix: str,
    role: Role,
    *,
    actor: str,
    now: datetime,
    keep_an_admin: bool = False,
) -> ApiKey | None:
    """Give the live key with ``prefix`` another role, in the audit log as ``actor``'s doing
    (the caller commits); None when there is no live one. The same role again changes nothing.
    ``keep_an_admin``: LastAdminKey rather than demote the only live admin key."""
    key = await live_api_key(session, prefix)
    if key is not None and key.role != role.value:
        if keep_an_admin:
            await _refuse_last_admin(session, key, "demote")
        _audit(session, actor, "apikey.role", prefix, {"from": key.role, "to": role.value}, now)
        key.role = role.value
    return key


def _audit(
    session: AsyncSession,
    actor: str,
    action: str,
    prefix: str,
    details: dict[str, Any],
    now: datetime,
) -> None:
    audit.record(
        session,
        actor=actor,
        action=action,
        target_type="api_key",
        target_id=prefix,
        details=details,
        now=now,
    )


def key_prefix(presented: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[2]:
        return None
    prefix = parts[1]
    return prefix if PREFIX_PATTERN.fullmatch(prefix) else None


def key_digest(key: str) -> str:
    """What is stored of a key: the SHA-256 of the whole key, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()
