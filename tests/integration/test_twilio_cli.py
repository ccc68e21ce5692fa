"""``voicebot twilio status`` and ``clear-alarm`` on a real database, and ``twilio check``
saying plainly that Twilio cannot be reached (it cannot, from here)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voicebot.cli import app
from voicebot.cli_twilio import EXIT_PROBLEM
from voicebot.db.session import make_engine, make_sessionmaker
from voicebot.dialer.refusals import raise_alarm


def test_the_cli_reports_the_alarm_state_and_clears_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "voicebot.db"
    monkeypatch.setenv("VOICEBOT_DATABASE_URL", f"sqlite+aiosqlite:///{db}")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["twilio", "status"])
    assert (result.exit_code, result.output) == (
        0,
        "carrier simulated: no alarm; dialing is allowed\n",
    )

    async def alarm() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{db}")
        async with make_sessionmaker(engine)() as session:
            await raise_alarm(
                session,
                carrier="twilio",
                code="20003",
                message="Authenticate",
                now=datetime.now(UTC),
            )
            await session.commit()
        await engine.dispose()

    asyncio.run(alarm())
    result = runner.invoke(app, ["twilio", "status"])
    assert result.exit_code == EXIT_PROBLEM
    assert "ALARM: the carrier (twilio) refused this service" in result.output
    assert "code 20003: Authenticate" in result.output
    result = runner.invoke(app, ["twilio", "clear-alarm", "--by", "ops"])
    assert (result.exit_code, result.output) == (0, "alarm cleared\n")
    assert runner.invoke(app, ["twilio", "status"]).exit_code == 0
