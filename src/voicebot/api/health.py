"""Liveness and readiness probes for load balancers and orchestrators (no key needed)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

_DATABASE_TIMEOUT_SECONDS = 5.0


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers, the dialer (if enabled) runs, speech models (if used) loaded",
)
async def readyz(request: Request) -> JSONResponse:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(_DATABASE_TIMEOUT_SECONDS), maker() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is logged, not returned
        log.warning("readiness: database unreachable: %s", type(exc).__name__)
        checks["database"] = "unreachable"
    dialer_task: asyncio.Task[None] | None = getattr(request.app.state, "dialer_task", None)
    if dialer_task is not None:
        checks["dialer"] = "stopped" if dialer_task.done() else "running"
    speech = getattr(request.app.state, "speech_models", None)
    if speech is not None:
        # Models load when speech is first needed (or at warm-up); once a load has started, the
        # service is ready only when it has finished and worked.
        for language, state in sorted(speech.load_states().items()):
            checks[f"speech_model:{language}"] = "ok" if state == "loaded" else state
    ready = all(value in {"ok", "running"} for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
    )
