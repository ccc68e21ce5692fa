"""API-key authentication and role checks for every ``/v1`` route.

A key travels as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Roles nest: admin ⊇
operator ⊇ analyst. Refusals are logged with the reason and the route, never with the key.

A key found valid is remembered for ``VOICEBOT_API_KEY_CACHE_SECONDS`` (by its SHA-256, as the
database holds it), so a busy client does not cost a lookup per request; a revoked key stops
working within that time. Refusals are never remembered.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.api.deps import SessionmakerDep
from voicebot.api.errors import api_error
from voicebot.db.apikeys import authenticate, key_digest
from voicebot.domain.types import Role

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer vb_…`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key: `vb_…`")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the API key's id, name and role."""

    key_id: int
    name: str
    role: Role
    # Analysts read results, not numbers to dial: they see numbers and names masked. Fixed with
    # the role, and read for every row a page shows.
    sees_phone_numbers: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sees_phone_numbers", self.role.allows(Role.OPERATOR))

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"apikey:{self.key_id}:{self.name}"[:128]


class VerifiedKeys:
    """Principals of keys verified in the last ``seconds``, at most ``size`` of them (the least
    recently used go first). Keyed by the key's SHA-256: the plaintext key is not kept."""

    def __init__(
        self,
        seconds: float,
        *,
        size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, principal = entry
        if self._clock() >= expires:
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return principal

    def forget(self, key_id: int) -> None:
        """Drop what was verified of a key that was just revoked or given another role, so this
        process applies the change at once (other processes within ``seconds``)."""
        for digest in [d for d, (_, p) in self._entries.items() if p.key_id == key_id]:
            del self._entries[digest]

    def remember(self, digest: str, principal: Principal) -> None:
        if self._seconds <= 0:
            return
        self._entries[digest] = (self._clock() + self._seconds, principal)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


def require_role(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the request and checks its key allows ``role``."""

    async def principal(
        request: Request,
        sessions: SessionmakerDep,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header: Annotated[str | None, Depends(_header)],
    ) -> Principal:
        presented = bearer.credentials if bearer is not None else header
        if not presented:
            _refused(request, "no API key")
            raise api_error(
                401,
                "not_authenticated",
                "send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        found = await _verify(request, sessions, presented)
        if not found.role.allows(role):
            _refused(request, f"key {found.key_id} has role {found.role}, needs {role}")
            raise api_error(
                403,
                "forbidden",
                f"this needs the {role} role; the key has {found.role}",
                role=found.role.value,
                required_role=role.value,
            )
        return found

    return principal


async def _verify(
    request: Request, sessions: async_sessionmaker[AsyncSession], presented: str
) -> Principal:
    verified: VerifiedKeys = request.app.state.verified_keys
    digest = key_digest(presented)
    found = verified.get(digest)
    if found is not None:
        return found
    async with sessions() as session:
        key = await authenticate(session, presented)
    if key is None:
        _refused(request, "unknown or revoked API key")
        raise api_error(
            401,
            "invalid_api_key",
            "the API key is unknown or revoked",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    found = Principal(key_id=key.id, name=key.name, role=Role(key.role))
    verified.remember(digest, found)
    return found


def _refused(request: Request, reason: str) -> None:
    client = request.client.host if request.client else "?"
    log.warning(
        "API request refused (%s): %s %s from %s", reason, request.method, request.url.path, client
    )


Analyst = Annotated[Principal, Depends(require_role(Role.ANALYST))]
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
