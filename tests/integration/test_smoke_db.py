from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebot.db.models import Campaign


async def test_campaign_round_trip_keeps_utc(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    started = datetime(2026, 3, 8, 6, 30, tzinfo=UTC)
    async with sessionmaker() as session:
        session.add(Campaign(name="c1", dialog_id="car_loan_followup.zh-CN", started_at=started))
        await session.commit()
    async with sessionmaker() as session:
        campaign = (await session.scalars(select(Campaign))).one()
    assert campaign.started_at == started
    assert campaign.started_at.tzinfo is not None
    assert campaign.status == "draft"
