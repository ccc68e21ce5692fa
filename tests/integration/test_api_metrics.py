"""``/metrics``, ``/healthz`` and ``/readyz`` on the real app, on both databases."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.api_support import running_api
from tests.integration.results_support import seed_results
from tests.integration.telephony_support import seed_dialed_call
from tests.integration.webhook_support import post_status, status_form, webhook_client
from voicebot.app import create_app
from voicebot.config import Settings
from voicebot.db.models import Call, Campaign
from voicebot.speech.recognition import SpeechModels
from voicebot.speech.synthesis import Synthesizer


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_show_live_calls_by_status_and_time_webhooks(settings: Settings) -> None:
    async with running_api(settings) as api:
        seeded = await seed_results(api.sessionmaker)
        async with api.sessionmaker() as session:
            await session.execute(
                update(Campaign).where(Campaign.id == seeded.campaigns[1]).values(live_calls=1)
            )
            await session.execute(
                update(Call).where(Call.id == seeded.calls[0]).values(status="ringing")
            )
            await session.commit()
        before = _samples((await api.http.get("/metrics")).text)
        # An unsigned status callback is refused; it is timed all the same.
        refused = await api.http.post(
            "/webhooks/twilio/status", data={"CallSid": "CA1", "CallStatus": "ringing"}
        )
        response = await api.http.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        samples = _samples(response.text)
    assert samples[("voicebot_live_calls", ())] == 1
    # Only campaigns with live calls are looked into: the ringing winter call is not counted.
    assert samples[("voicebot_calls_active", (("status", "in-progress"),))] == 1
    assert samples[("voicebot_calls_active", (("status", "ringing"),))] == 0
    key = (
        "voicebot_webhook_seconds_count",
        (("route", "/webhooks/twilio/status"), ("status", str(refused.status_code))),
    )
    assert samples[key] == before.get(key, 0) + 1
    assert ("voicebot_calls_dialed_total", ()) in samples
    assert ("voicebot_turn_latency_seconds_count", ()) in samples
    assert ("voicebot_recognition_real_time_factor_count", ()) in samples
    assert "+86" not in response.text


async def test_health_and_readiness(settings: Settings) -> None:
    async with running_api(settings) as api:
        assert (await api.http.get("/healthz")).json() == {"status": "ok"}
        ready = await api.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_not_ready_until_the_speech_model_in_use_has_loaded(sqlite_url: str) -> None:
    settings = Settings(environment="test", database_url=sqlite_url, dialer_enabled=False)
    models = SpeechModels()
    app = create_app(settings, run_dialer=False, speech=(models, Synthesizer()))
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api.test"
            ) as http,
        ):
            loading = asyncio.create_task(models.get("ko-KR"))
            await asyncio.sleep(0)
            early = await http.get("/readyz")
            await loading
            late = await http.get("/readyz")
    finally:
        await asyncio.to_thread(models.close)
    assert early.status_code == 503
    assert early.json()["checks"]["speech_model:ko-KR"] == "loading"
    assert late.status_code == 200
    assert late.json()["checks"]["speech_model:ko-KR"] == "ok"


def _value(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_status_events_and_ended_calls_are_counted(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    before = (
        _value("voicebot_call_status_events_total", status="ringing"),
        _value("voicebot_call_status_events_total", status="busy"),
        _value("voicebot_calls_ended_total", status="busy"),
    )
    async with webhook_client(settings) as client:
        call_id = await seed_dialed_call(sessionmaker, persona="busy")
        for form in (status_form("ringing", 1), status_form("busy", 2, CallDuration="0")):
            assert (await post_status(client, call_id, form)).status_code == 200
        # A repeat is not counted again.
        assert (await post_status(client, call_id, status_form("busy", 2))).status_code == 200
    after = (
        _value("voicebot_call_status_events_total", status="ringing"),
        _value("voicebot_call_status_events_total", status="busy"),
        _value("voicebot_calls_ended_total", status="busy"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]
