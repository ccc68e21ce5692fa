"""Input PostgreSQL cannot store, refused with a 422 instead of failing inside a query as a 500.

PostgreSQL text may not hold a NUL character (U+0000), and its integers stop at 2**63 - 1. Query
strings are checked for NULs up front, naming the parameter. A NUL inside a JSON body
(``"\\u0000"``) or a number too large for the database that reaches a query anyway is turned into
a 422 that says what was wrong; the session's transaction is rolled back, so nothing is stored.
A JSON body that is not UTF-8 is a 422 too, as malformed JSON is.

FastAPI's own 422 for a request that fails validation is kept, without the ``input`` it echoes
back: a secret sent in the wrong shape (a notification endpoint's secret too short, a whole API
key in a path) must not come back in a response or in a proxy's log, and a value JSON cannot
hold (``NaN``, ``1e400``) would make the 422 itself fail as a 500.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

_NUL = "\x00"


def _error(code: str, message: str, *, field: str | None = None) -> dict[str, object]:
    detail: dict[str, object] = {"error": code, "message": message}
    if field is not None:
        detail["field"] = field
    return {"detail": detail}


class RejectNulInQuery:
    """422 for a query string with a NUL character in a parameter's name or value."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and b"%00" in scope.get("query_string", b"").lower():
            pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            for name, value in pairs:
                if _NUL in name or _NUL in value:
                    shown = name.replace(_NUL, "\\u0000")
                    response = JSONResponse(
                        _error(
                            "nul_character",
                            f"query parameter {shown!r} contains a NUL character (\\u0000), "
                            "which cannot be stored or searched for",
                            field=shown,
                        ),
                        status_code=422,
                    )
                    await response(scope, receive, send)
                    return
        await self._app(scope, receive, send)


async def _unstorable_value(request: Request, exc: Exception) -> JSONResponse:
    # SQLite's driver raises OverflowError itself; PostgreSQL's comes wrapped in DBAPIError.
    reason = str(exc.orig) if isinstance(exc, DBAPIError) else "out of int64 range"
    if "0x00" in reason:
        body = _error(
            "nul_character",
            "a text value in the request contains a NUL character (\\u0000), "
            "which cannot be stored or searched for; nothing was changed",
        )
    elif "out of int64 range" in reason or "out of int32 range" in reason:
        body = _error(
            "number_out_of_range",
            "a number in the request is larger than any id or count the service stores "
            "(at most 9223372036854775807); nothing was changed",
        )
    else:
        raise exc
    return JSONResponse(body, status_code=422)


async def _unreadable_body(request: Request, exc: Exception) -> Response:
    """A JSON body that is not UTF-8 is a 422 like any other malformed JSON, naming where it
    breaks, rather than FastAPI's bare 400 "There was an error parsing the body"; every other
    HTTP error is answered as FastAPI answers it."""
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
        body = _error(
            "invalid_body",
            f"the request body is not UTF-8 JSON: byte {cause.start} cannot be decoded "
            f"({cause.reason})",
            field="body",
        )
        return JSONResponse(body, status_code=422)
    return await http_exception_handler(request, exc)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 (``{"detail": [{"type", "loc", "msg", …}]}``) without each error's
    ``input``: where the problem is and what it is, never the value itself."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {key: value for key, value in error.items() if key != "input"} for error in exc.errors()
    ]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def install_input_guards(app: FastAPI) -> None:
    app.add_middleware(RejectNulInQuery)
    app.add_exception_handler(DBAPIError, _unstorable_value)
    app.add_exception_handler(OverflowError, _unstorable_value)
    app.add_exception_handler(StarletteHTTPException, _unreadable_body)
    app.add_exception_handler(RequestValidationError, _invalid_request)
