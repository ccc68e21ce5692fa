"""The error shape of the operations API: ``{"detail": {"error": code, "message": text, …}}``.

Request validation keeps FastAPI's own 422 format (``{"detail": [{"loc", "msg", "type"}, …]}``).
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    error: str
    message: str


class ErrorBody(BaseModel):
    detail: ErrorDetail


def api_error(
    status_code: int,
    code: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    **details: Any,
) -> HTTPException:
    """An exception FastAPI renders as the API's error shape; extra keywords go into detail."""
    return HTTPException(
        status_code=status_code,
        detail={"error": code, "message": message, **details},
        headers=headers,
    )


def not_found(kind: str, key: object) -> HTTPException:
    return api_error(404, "not_found", f"{kind} {key} does not exist")


def documented(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can return."""
    return {code: {"model": ErrorBody} for code in status_codes}
