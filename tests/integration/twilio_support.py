"""A stand-in for Twilio's REST API behind the real twilio SDK: an ``AsyncHttpClient`` that sees
the exact request the SDK builds and answers with Twilio's own JSON (success or error)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from twilio.http import AsyncHttpClient
from twilio.http.response import Response

ACCOUNT_SID = "AC" + "12" * 16
AUTH_TOKEN = "twilio-test-auth-token"
API = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"


@dataclass(frozen=True)
class Sent:
    method: str
    url: str
    data: dict[str, Any]
    auth: tuple[str, str] | None
    params: dict[str, Any] = field(default_factory=dict)

    def form(self) -> dict[str, list[str]]:
        """The body as name -> values, the way it goes on the wire (a list field repeats)."""
        fields: dict[str, list[str]] = {}
        for name, value in self.data.items():
            values = value if isinstance(value, list) else [value]
            fields[name] = [str(v) for v in values]
        return fields

    def wire(self) -> str:
        return urlencode(self.data, doseq=True)


def call_json(sid: str, status: str = "queued", **extra: Any) -> dict[str, Any]:
    return {"sid": sid, "account_sid": ACCOUNT_SID, "status": status, **extra}


def error_json(status: int, code: int | None, message: str) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "message": message}
    if code is not None:
        body["code"] = code
        body["more_info"] = f"https://www.twilio.com/docs/errors/{code}"
    return body


Reply = tuple[int, dict[str, Any]]


@dataclass
class FakeTwilio(AsyncHttpClient):
    """Answers every request with ``reply(sent)``; by default a created call, its sid numbered
    in order. ``raise_error`` makes every request fail as a lost connection would."""

    reply: Callable[[Sent], Reply] | None = None
    raise_error: BaseException | None = None
    sent: list[Sent] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        AsyncHttpClient.__init__(self, logging.getLogger("tests.twilio"), True, None)

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109  # the SDK's HttpClient signature
        allow_redirects: bool = False,
    ) -> Response:
        sent = Sent(
            method=method, url=uri, data=dict(data or {}), auth=auth, params=dict(params or {})
        )
        self.sent.append(sent)
        if self.raise_error is not None:
            raise self.raise_error
        status, body = (self.reply or self.created)(sent)
        return Response(status, json.dumps(body))

    def created(self, sent: Sent) -> Reply:
        if sent.url.endswith("/Calls.json"):
            return 201, call_json(f"CA{len(self.sent):032x}")
        return 200, call_json(sent.url.rsplit("/", 1)[-1].removesuffix(".json"), "completed")

    async def close(self) -> None:
        self.closed = True


def refuse(status: int, code: int | None, message: str) -> Callable[[Sent], Reply]:
    """Every request answered with Twilio's error JSON."""
    return lambda sent: (status, error_json(status, code, message))
