"""``/metrics`` for Prometheus (no key: it holds counts, never numbers or names), and the ASGI
middleware that times carrier webhooks."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voicebot import metrics
from voicebot.db.models import Call, Campaign, NotificationDelivery
from voicebot.dialer.lifecycle import LIVE_CALL_STATUSES

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def read_metrics(request: Request) -> Response:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    try:
        await _read_gauges(maker)
    except Exception as exc:  # the counters are still worth serving without the gauges
        log.warning("metrics: gauges not read from the database: %s", type(exc).__name__)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _read_gauges(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker() as session:
        live = await session.scalar(select(func.coalesce(func.sum(Campaign.live_calls), 0)))
        metrics.LIVE_CALLS.set(int(live or 0))
        # Only campaigns with live calls are looked into, through ix_calls_campaign_id_status:
        # never a scan of every call ever made.
        live_campaigns = select(Campaign.id).where(Campaign.live_calls > 0)
        rows = await session.execute(
            select(Call.status, func.count())
            .where(Call.campaign_id.in_(live_campaigns), Call.status.in_(LIVE_CALL_STATUSES))
            .group_by(Call.status)
        )
        by_status = {status: count for status, count in rows}
        for status in LIVE_CALL_STATUSES:
            metrics.CALLS_BY_STATUS.labels(status=status).set(int(by_status.get(status, 0)))
        pending = await session.scalar(
            select(func.count())
            .select_from(NotificationDelivery)
            .where(NotificationDelivery.status == "pending")
        )
        metrics.NOTIFICATIONS_PENDING.set(int(pending or 0))


class WebhookTimer:
    """Times every request under ``/webhooks/`` into ``voicebot_webhook_seconds`` (a plain ASGI
    middleware: it adds nothing to the webhook's own work)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/webhooks/"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = "unknown" if status == 404 else path  # no label per made-up path
            metrics.WEBHOOK_SECONDS.labels(route=route, status=str(status)).observe(
                time.perf_counter() - started
            )
