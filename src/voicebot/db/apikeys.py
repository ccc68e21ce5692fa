"""API keys: ``vb_<prefix>_<secret>``. Only the SHA-256 of the whole key is stored; the prefix
finds the row, so checking a key costs one indexed lookup and a constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voicebot.db.models import ApiKey
from voicebot.domain.types import Role

KEY_SCHEME = "vb"
_PREFIX_BYTES = 6  # 12 hex characters: unique enough to find a row, useless to guess a key


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


async def revoke_api_key(session: AsyncSession, prefix: str, *, now: datetime) -> bool:
    """Revoke the key with ``prefix`` (the caller commits); False when there is no live one."""
    key = await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or key.revoked_at is not None:
        return False
    key.revoked_at = now
    return True


def key_prefix(presented: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or not parts[2]:
        return None
    prefix = parts[1]
    if len(prefix) != 2 * _PREFIX_BYTES or not all(c in "0123456789abcdef" for c in prefix):
        return None
    return prefix


def key_digest(key: str) -> str:
    """What is stored of a key: the SHA-256 of the whole key, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()
