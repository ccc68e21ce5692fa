"""Logging as plain text or JSON lines (one object per record, with the call id it concerns),
with neither phone numbers nor secrets in either.

The call id comes from ``extra={"call_id": …}``, else from :func:`bound_call` around the work,
else from the message's own "call 123" (how the code base words its call logs). Anything that
looks like a phone number (eight digits or more, or spoken: ``domain.privacy.mask_numbers``) is
masked, and registered secrets and anything shaped like an API key are replaced, in the message
and the traceback alike, whatever logged them: uvicorn's access log included.
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

from voicebot.domain.privacy import mask_numbers

_OURS = "_voicebot_handler"
_CALL_ID: ContextVar[int | None] = ContextVar("voicebot_call_id", default=None)
_CALL_IN_MESSAGE = re.compile(r"\bcall (\d+)\b")
# An API key (db.apikeys: vb_<prefix>_<secret>), say one pasted into a URL: its prefix is kept.
_API_KEY = re.compile(r"\b(vb_[0-9a-f]{12}_)[A-Za-z0-9_-]+")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    return mask_numbers(_API_KEY.sub(r"\1[secret]", text))


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, redacted like the JSON lines."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(_TEXT_FORMAT)
        self._secrets = tuple(s for s in secrets if len(s) >= 4)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


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
    handler.setFormatter(JsonFormatter(secrets) if json_lines else TextFormatter(secrets))
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's loggers keep their own handlers unless told to pass records up: its access log
    # would show a key pasted into a URL, and its error log a failed request's traceback.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_log = logging.getLogger(name)
        uvicorn_log.handlers[:] = []
        uvicorn_log.propagate = True
