"""The application factory: the one place that wires settings, database, carrier and dialer."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from voicebot import __version__
from voicebot.api import (
    apikeys,
    audit,
    campaigns,
    contacts,
    do_not_call,
    exports,
    health,
    history,
    media,
    metrics,
    notifications,
    outcomes,
    payments,
    reports,
    webhooks,
)
from voicebot.api import calls as call_results
from voicebot.api import carrier as carrier_api
from voicebot.api.auth import VerifiedKeys
from voicebot.api.dashboard import mount_dashboard
from voicebot.api.guards import install_input_guards
from voicebot.config import Settings
from voicebot.db.session import make_engine, make_read_sessionmaker, make_sessionmaker
from voicebot.dialer.recorder import StatusRecorder
from voicebot.telephony.carrier import Carrier

if TYPE_CHECKING:
    from voicebot.speech.recognition import SpeechModels
    from voicebot.speech.synthesis import Synthesizer

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    carrier: Carrier | None = None,
    run_dialer: bool | None = None,
    speech: tuple[SpeechModels, Synthesizer] | None = None,
) -> FastAPI:
    """Build the service. ``carrier`` overrides the one the settings name (tests pass fakes);
    ``run_dialer`` overrides ``settings.dialer_enabled``; ``speech`` lends loaded speech models
    and a synthesiser (shared across apps, e.g. by a test session) instead of the app's own."""
    settings = settings or Settings()
    with_dialer = settings.dialer_enabled if run_dialer is None else run_dialer

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from voicebot.telephony.factory import build_carrier

        engine = make_engine(settings.database_url, pool_size=settings.database_pool_size)
        sessionmaker = make_sessionmaker(engine)
        live_carrier = carrier or build_carrier(settings)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker
        app.state.read_sessionmaker = make_read_sessionmaker(engine)
        app.state.carrier = live_carrier
        recording_engine = _recording_engine(settings, engine)
        app.state.status_recorder = StatusRecorder(make_sessionmaker(recording_engine))
        from voicebot.calls.services import build_call_services

        models, synthesizer = speech or (None, None)
        calls = build_call_services(
            settings, sessionmaker, live_carrier, speech_models=models, synthesizer=synthesizer
        )
        app.state.calls = calls
        app.state.speech_models = calls.speech_models
        app.state.synthesizer = calls.synthesizer
        stop = asyncio.Event()
        dialer_task: asyncio.Task[None] | None = None
        if with_dialer:
            from voicebot.dialer.loop import Dialer

            dialer = Dialer(settings, sessionmaker, live_carrier)
            app.state.dialer = dialer
            dialer_task = asyncio.create_task(dialer.run(stop), name="dialer")
            dialer_task.add_done_callback(_report_dialer_exit)
        app.state.dialer_task = dialer_task
        notifier = await _start_notifications(settings, sessionmaker, stop)
        # Everything loaded so far (the framework, the ORM, dialogs, speech models) lives as long
        # as the app: frozen, it is no longer walked by every full garbage collection, which
        # otherwise costs ~10 % of a request's CPU under load.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            stop.set()
            if dialer_task is not None:
                # A crash was already logged when it happened; shutdown goes on regardless.
                await asyncio.gather(dialer_task, return_exceptions=True)
            if notifier is not None:
                await notifier.aclose()
            await calls.aclose()
            await app.state.status_recorder.aclose()
            if recording_engine is not engine:
                await recording_engine.dispose()
            if carrier is None:
                await live_carrier.aclose()
            await engine.dispose()

    app = FastAPI(
        title="voicebot",
        version=__version__,
        description="Voice-bot dialer for car-loan post-loan follow-up calls.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verified_keys = VerifiedKeys(settings.api_key_cache_seconds)
    # Routes are matched in order: the carrier's callbacks, the busiest, first; then what
    # analysts read most.
    app.include_router(webhooks.router)
    app.include_router(call_results.router)
    app.include_router(outcomes.router)
    app.include_router(reports.router)
    app.include_router(campaigns.router)
    app.include_router(carrier_api.router)
    app.include_router(contacts.router)
    app.include_router(do_not_call.router)
    app.include_router(audit.router)
    app.include_router(apikeys.router)
    app.include_router(media.router)
    app.include_router(health.router)
    app.include_router(history.router)
    app.include_router(exports.router)
    app.include_router(metrics.router)
    app.include_router(payments.router)
    app.include_router(notifications.router)
    app.add_middleware(metrics.WebhookTimer)
    install_input_guards(app)
    mount_dashboard(app)
    return app


def _recording_engine(settings: Settings, engine: AsyncEngine) -> AsyncEngine:
    """The status recorder's own connections on PostgreSQL. Callbacks never wait for a
    connection behind the API's queries, and each of the recorder's statements is planned once
    per connection: they carry a batch as arrays, and planned per execution (as PostgreSQL
    otherwise does with array parameters) a callback cost PostgreSQL 1.6 times the CPU
    (bench/api.py). SQLite writes one transaction at a time anyway: the recorder shares the
    app's engine."""
    if engine.dialect.name != "postgresql":
        return engine
    return make_engine(settings.database_url, pool_size=StatusRecorder.CONCURRENCY, plan_once=True)


class _Notifier:
    """The notification worker's task and its HTTP client, stopped together."""

    def __init__(self, task: asyncio.Task[None], http: httpx.AsyncClient) -> None:
        self.task = task
        self.http = http

    async def aclose(self) -> None:
        await asyncio.gather(self.task, return_exceptions=True)
        await self.http.aclose()


async def _start_notifications(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], stop: asyncio.Event
) -> _Notifier | None:
    if not settings.notifications_enabled:
        return None
    from voicebot.notifications.worker import NotificationWorker

    http = httpx.AsyncClient(follow_redirects=False)
    worker = NotificationWorker(settings, sessionmaker, http)
    task = asyncio.create_task(worker.run(stop), name="notifications")
    return _Notifier(task, http)


def _report_dialer_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the dialer stopped: %r", exc, exc_info=exc)
