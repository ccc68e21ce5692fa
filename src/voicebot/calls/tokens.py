"""Stream tokens: the answer TwiML hands one to the media stream, which must present it on start.

A token is ``<expiry unix seconds>.<hex HMAC-SHA256>`` over the call id and the expiry, keyed by
the carrier auth token, so only this service can mint one and it names exactly one call. That a
call gets only one stream is enforced where the stream is claimed (``calls.stream_sid``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import datetime, timedelta
from enum import StrEnum

_CONTEXT = b"voicebot media stream"


class TokenProblem(StrEnum):
    MISSING = "missing"
    MALFORMED = "malformed"
    FORGED = "forged"
    EXPIRED = "expired"


class StreamTokenRefused(ValueError):
    def __init__(self, problem: TokenProblem) -> None:
        super().__init__(f"stream token {problem.value}")
        self.problem = problem


def _digest(secret: str, call_id: int, expires: int) -> str:
    message = b"%s|%d|%d" % (_CONTEXT, call_id, expires)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def issue_stream_token(secret: str, call_id: int, *, now: datetime, ttl: timedelta) -> str:
    expires = math.ceil((now + ttl).timestamp())
    return f"{expires}.{_digest(secret, call_id, expires)}"


def check_stream_token(
    secrets: tuple[str, ...], call_id: int, token: str | None, *, now: datetime
) -> None:
    """Raises StreamTokenRefused unless ``token`` was issued for ``call_id`` with one of
    ``secrets`` (the current one first, then one being rotated out) and is unexpired."""
    if not token:
        raise StreamTokenRefused(TokenProblem.MISSING)
    expires_text, _, digest = token.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12 or len(digest) != 64:
        raise StreamTokenRefused(TokenProblem.MALFORMED)
    expires = int(expires_text)
    # Checked before the expiry, so an attacker learns nothing from the difference.
    if not any(hmac.compare_digest(digest, _digest(s, call_id, expires)) for s in secrets):
        raise StreamTokenRefused(TokenProblem.FORGED)
    if now.timestamp() > expires:
        raise StreamTokenRefused(TokenProblem.EXPIRED)
