"""A campaign's Twilio settings through the operations API: defaults, validation naming the
field, and the values the dialer reads back."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.api_support import running_api
from voicebot.config import Settings
from voicebot.db.models import Campaign
from voicebot.dialer.gate import load_campaigns
from voicebot.domain.campaigns import MachineDetection
from voicebot.telephony.carrier import CallOptions


async def test_defaults_then_every_setting_round_trips_to_the_dialer(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with running_api(settings) as api:
        plain = await api.create_campaign("plain")
        assert {k: plain[k] for k in CALL_SETTINGS} == {
            "caller_id_mode": "rotate",
            "ring_timeout_seconds": 30,
            "time_limit_seconds": 1800,
            "machine_detection": "off",
            "machine_action": "hang_up",
            "record_calls": False,
        }
        chosen = {
            "caller_id_mode": "region",
            "ring_timeout_seconds": 25,
            "time_limit_seconds": 600,
            "machine_detection": "DetectMessageEnd",
            "machine_action": "leave_message",
            "record_calls": True,
        }
        created = await api.create_campaign(
            "amd", caller_numbers=["+14155550100", "+12125550100"], **chosen
        )
        assert {k: created[k] for k in CALL_SETTINGS} == chosen
        # A draft's settings may change; the rest stay.
        response = await api.http.patch(
            f"/v1/campaigns/{plain['id']}", json={"record_calls": True}, headers=api.auth()
        )
        assert response.status_code == 200
        assert (response.json()["record_calls"], response.json()["machine_detection"]) == (
            True,
            "off",
        )
    async with sessionmaker() as session:
        views = await load_campaigns(session, [created["id"], plain["id"]])
    assert views[created["id"]].call_options == CallOptions(
        ring_timeout_seconds=25,
        time_limit_seconds=600,
        machine_detection=MachineDetection.DETECT_MESSAGE_END,
        record=True,
    )
    assert views[created["id"]].caller_id_mode == "region"
    assert views[plain["id"]].call_options == CallOptions(record=True)


CALL_SETTINGS = (
    "caller_id_mode",
    "ring_timeout_seconds",
    "time_limit_seconds",
    "machine_detection",
    "machine_action",
    "record_calls",
)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"machine_detection": "Detect"}, "machine_detection", "'off', 'Enable'"),
        ({"machine_action": "leave_message"}, None, "needs machine_detection DetectMessageEnd"),
        (
            {"machine_detection": "Enable", "machine_action": "leave_message"},
            None,
            "needs machine_detection DetectMessageEnd",
        ),
        ({"ring_timeout_seconds": 601}, "ring_timeout_seconds", "less than or equal to 600"),
        ({"caller_id_mode": "nearest"}, "caller_id_mode", "'rotate' or 'region'"),
    ],
)
async def test_bad_settings_are_refused_naming_the_problem(
    body: dict[str, object],
    field: str | None,
    words: str,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with running_api(settings) as api:
        response = await api.http.post(
            "/v1/campaigns",
            json={"name": "bad", "dialog_id": "car_loan_followup.zh-CN", **body},
            headers=api.auth(),
        )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert words in error["msg"]
    if field is not None:
        assert error["loc"][-1] == field
    async with sessionmaker() as session:
        assert await session.get(Campaign, 1) is None  # nothing stored
