"""API-key authentication and role checks for every ``/v1`` route.

A key travels as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Roles nest: admin ⊇
operator ⊇ analyst. Refusals are logged with the reason and the route, never with the key.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from voicebot.api.deps import SessionDep
from voicebot.api.errors import api_error
from voicebot.db.apikeys import authenticate
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

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"apikey:{self.key_id}:{self.name}"[:128]

    @property
    def sees_phone_numbers(self) -> bool:
        """Analysts read results, not numbers to dial: they see numbers masked."""
        return self.role.allows(Role.OPERATOR)


def require_role(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the request and checks its key allows ``role``."""

    async def principal(
        request: Request,
        session: SessionDep,
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
        if not found.role.allows(role):
            _refused(request, f"key {key.id} has role {found.role}, needs {role}")
            raise api_error(
                403,
                "forbidden",
                f"this needs the {role} role; the key has {found.role}",
                role=found.role.value,
                required_role=role.value,
            )
        return found

    return principal


def _refused(request: Request, reason: str) -> None:
    client = request.client.host if request.client else "?"
    log.warning(
        "API request refused (%s): %s %s from %s", reason, request.method, request.url.path, client
    )


Analyst = Annotated[Principal, Depends(require_role(Role.ANALYST))]
Operator = Annotated[Principal, Depends(require_role(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require_role(Role.ADMIN))]
