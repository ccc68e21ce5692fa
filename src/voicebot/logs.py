"""Logging as JSON lines: one object per record, with the call id it concerns, and neither
phone numbers nor secrets in it.

The call id comes from ``extra={"call_id": …}``, else from :func:`bound_call` around the work,
else from the message's own "call 123" (how the code base words its call logs). Anything that
looks like a phone number (eight digits or more) is masked, and registered secrets are replaced,
in the message and the traceback alike, whatever logged them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from voicebot.domain.phones import mask_phone

_OURS = "_voicebot_handler"
_CALL_ID: ContextVar[int | None] = ContextVar("voicebot_call_id", default=None)
_CALL_IN_MESSAGE = re.compile(r"\bcall (\d+)\b")
# A run of 8+ digits, optionally with a leading + and single spaces/dashes between digits; an
# ISO date (and what follows it) is not one.
_PHONE = re.compile(r"(?<![\w+-])(?!\d{4}-\d{2}-\d{2})\+?\d(?:[ -]?\d){7,}(?!\w)")


@contextlib.contextmanager
def bound_call(call_id: int) -> Iterator[None]:
    """Records logged inside (and in tasks started inside) carry this call id."""
    token = _CALL_ID.set(call_id)
    try:
        yield
    finally:
        _CALL_ID.reset(token)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[secret]")
    return _PHONE.sub(
        lambda m: mask_phone("".join(c for c in m.group() if c in "+0123456789")), text
    )


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if len(s) >= 4)

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(message, self._secrets),
        }
        call_id = getattr(record, "call_id", None) or _CALL_ID.get()
        if call_id is None and (found := _CALL_IN_MESSAGE.search(message)) is not None:
            call_id = int(found.group(1))
        if call_id is not None:
            document["call_id"] = int(call_id)
        if record.exc_info:
            document["exception"] = redact(self.formatException(record.exc_info), self._secrets)
        return json.dumps(document, ensure_ascii=False)


def configure_logging(
    level: str,
    *,
    json_lines: bool,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Send every record to ``stream`` (stderr), as JSON lines or as plain text. Like
    ``logging.basicConfig``, it leaves alone a root logger someone else already configured (a
    test runner, an embedding program); configuring again replaces only its own handler."""
    root = logging.getLogger()
    if any(not getattr(h, _OURS, False) for h in root.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _OURS, True)
    if json_lines:
        handler.setFormatter(JsonFormatter(secrets))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if json_lines:
        # uvicorn's loggers keep their own handlers unless told to pass records up.
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            uvicorn_log = logging.getLogger(name)
            uvicorn_log.handlers[:] = []
            uvicorn_log.propagate = True
