from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
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
        if session.get_bind().dialect.name == "postgresql":
            # The session's zone changes how PostgreSQL shows a timestamptz, never what is read.
            await session.execute(text("SET LOCAL TIME ZONE 'Asia/Shanghai'"))
        campaign = (await session.scalars(select(Campaign))).one()
    assert campaign.started_at == started
    assert campaign.started_at.utcoffset() == timedelta(0)
    assert campaign.status == "draft"
