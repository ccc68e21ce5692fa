"""How a notification is signed, and how a receiver checks it.

``X-Voicebot-Signature: sha256=<hex>`` is HMAC-SHA256, keyed with the endpoint's secret, of
``<X-Voicebot-Timestamp>.<body>``: the timestamp (Unix seconds) is signed with the body so a
captured request cannot be replayed later. ``X-Voicebot-Event-Id`` is the same for every attempt
at one event: a receiver that sees it twice may drop the repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE = "X-Voicebot-Signature"
TIMESTAMP = "X-Voicebot-Timestamp"
EVENT_ID = "X-Voicebot-Event-Id"
EVENT_TYPE = "X-Voicebot-Event-Type"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def signed_headers(secret: str, body: bytes, *, event_id: int, event_type: str) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        TIMESTAMP: str(timestamp),
        SIGNATURE: signature(secret, timestamp, body),
        EVENT_ID: str(event_id),
        EVENT_TYPE: event_type,
    }


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_seconds: int = 300
) -> bool:
    """True when the request carries a valid signature made within the tolerance."""
    stamp = headers.get(TIMESTAMP) or headers.get(TIMESTAMP.lower()) or ""
    given = headers.get(SIGNATURE) or headers.get(SIGNATURE.lower()) or ""
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(signature(secret, int(stamp), body), given)
