"""The application factory: the one place that wires settings, database, carrier and dialer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from fastapi import FastAPI

from voicebot import __version__
from voicebot.api import audit, campaigns, contacts, do_not_call, health, media, webhooks
from voicebot.config import Settings
from voicebot.db.session import make_engine, make_sessionmaker
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
        app.state.carrier = live_carrier
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
        try:
            yield
        finally:
            stop.set()
            if dialer_task is not None:
                # A crash was already logged when it happened; shutdown goes on regardless.
                await asyncio.gather(dialer_task, return_exceptions=True)
            await calls.aclose()
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
    app.include_router(campaigns.router)
    app.include_router(contacts.router)
    app.include_router(do_not_call.router)
    app.include_router(audit.router)
    app.include_router(webhooks.router)
    app.include_router(media.router)
    app.include_router(health.router)
    return app


def _report_dialer_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("the dialer stopped: %r", exc, exc_info=exc)
