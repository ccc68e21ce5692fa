"""The application factory: the one place that wires settings, database, carrier and dialer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from voicebot import __version__
from voicebot.api import campaigns, contacts, webhooks
from voicebot.config import Settings
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.telephony.carrier import Carrier

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    carrier: Carrier | None = None,
    run_dialer: bool | None = None,
) -> FastAPI:
    """Build the service. ``carrier`` overrides the one the settings name (tests pass fakes);
    ``run_dialer`` overrides ``settings.dialer_enabled``."""
    settings = settings or Settings()
    with_dialer = settings.dialer_enabled if run_dialer is None else run_dialer

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from voicebot.dialer.loop import Dialer
        from voicebot.telephony.factory import build_carrier

        engine = make_engine(settings.database_url, pool_size=settings.database_pool_size)
        sessionmaker = make_sessionmaker(engine)
        live_carrier = carrier or build_carrier(settings)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker
        app.state.carrier = live_carrier
        stop = asyncio.Event()
        dialer_task: asyncio.Task[None] | None = None
        if with_dialer:
            dialer = Dialer(settings, sessionmaker, live_carrier)
            app.state.dialer = dialer
            dialer_task = asyncio.create_task(dialer.run(stop), name="dialer")
        try:
            yield
        finally:
            stop.set()
            if dialer_task is not None:
                await dialer_task
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
    app.include_router(webhooks.router)
    return app
