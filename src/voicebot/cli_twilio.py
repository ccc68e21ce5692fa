"""``voicebot twilio check|status|clear-alarm``: the Twilio account as this service sees it.

``check`` asks Twilio (through the SDK's async client) whether the credentials work and whether
every caller number (``VOICEBOT_TWILIO_CALLER_NUMBERS`` and those of campaigns not finished) is a
number of the account or a verified caller id; it says so plainly when Twilio cannot be reached.
``status`` shows the carrier alarm the dialer raises when Twilio refuses this service, and
``clear-alarm`` closes it once the cause is fixed. ``cli.py`` registers them:
``app.add_typer(twilio_app, name="twilio")``.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

import typer
from aiohttp import ClientError
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.rest import Client

from voicebot.config import Settings
from voicebot.db.models import Campaign
from voicebot.domain.campaigns import FINISHED
from voicebot.domain.types import CampaignStatus
from voicebot.telephony.carrier import RefusalKind, refusal_kind

twilio_app = typer.Typer(help="The Twilio account: credentials, numbers, alarms.")

EXIT_OK = 0
EXIT_PROBLEM = 1  # Twilio answered and something is wrong
EXIT_UNREACHABLE = 3  # nothing could be checked
_FINISHED = [s.value for s in FINISHED]


@dataclass(slots=True)
class CheckReport:
    reachable: bool = True
    lines: list[str] = field(default_factory=list)
    problems: int = 0

    def ok(self, line: str) -> None:
        self.lines.append(f"ok       {line}")

    def problem(self, line: str) -> None:
        self.problems += 1
        self.lines.append(f"PROBLEM  {line}")

    @property
    def exit_code(self) -> int:
        if not self.reachable:
            return EXIT_UNREACHABLE
        return EXIT_PROBLEM if self.problems else EXIT_OK


async def check_twilio(
    settings: Settings, numbers: Sequence[str], http_client: AsyncHttpClient | None = None
) -> CheckReport:
    """Credentials first (the account's status), then each caller number."""
    report = CheckReport()
    base = settings.public_base_url
    if base.startswith("https://"):
        report.ok(f"public URL {base}: Twilio's webhooks and media stream (wss://) go there")
    else:
        report.problem(
            f"public URL {base}: Twilio needs https:// (and wss:// for the media stream); set "
            "VOICEBOT_PUBLIC_BASE_URL to the URL Twilio reaches this service at"
        )
    owns_http = http_client is None
    if http_client is None:
        from twilio.http.async_http_client import AsyncTwilioHttpClient

        http_client = AsyncTwilioHttpClient(timeout=settings.twilio_http_timeout_seconds)
    client = Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=http_client,
    )
    sid = settings.twilio_account_sid
    try:
        try:
            account = await client.api.v2010.accounts(sid).fetch_async()
        except TwilioRestException as exc:
            kind = refusal_kind(str(exc.code) if exc.code else None, exc.status)
            if kind is RefusalKind.AUTHENTICATION:
                report.problem(
                    f"credentials: Twilio refused account {sid} (HTTP {exc.status}, code "
                    f"{exc.code}): check VOICEBOT_TWILIO_ACCOUNT_SID and VOICEBOT_TWILIO_AUTH_TOKEN"
                )
            else:
                report.problem(f"account {sid}: HTTP {exc.status}, code {exc.code}: {exc.msg}")
            return report
        if account.status != "active":
            report.problem(f"account {sid} is {account.status}, not active")
        else:
            report.ok(f"credentials: account {sid} ({account.friendly_name}) is active")
        if not numbers:
            report.problem(
                "no caller numbers: set VOICEBOT_TWILIO_CALLER_NUMBERS or campaigns' caller_numbers"
            )
        for number in numbers:
            owned = await client.incoming_phone_numbers.list_async(phone_number=number, limit=1)
            if owned:
                voice = (owned[0].capabilities or {}).get("voice", True)
                if voice:
                    report.ok(f"caller number {number}: a number of this account")
                else:
                    report.problem(f"caller number {number}: this account's, but without voice")
                continue
            verified = await client.outgoing_caller_ids.list_async(phone_number=number, limit=1)
            if verified:
                report.ok(f"caller number {number}: a verified caller id of this account")
            else:
                report.problem(
                    f"caller number {number}: neither a number nor a verified caller id of "
                    "this account; Twilio will refuse calls from it (21210/21212)"
                )
    except (ClientError, OSError, TimeoutError) as exc:
        report.reachable = False
        report.lines.append(
            f"UNREACHABLE  cannot reach Twilio's API (api.twilio.com): {type(exc).__name__}: "
            f"{exc}. Nothing was checked: run this again where the network allows HTTPS to "
            "api.twilio.com."
        )
    finally:
        close = getattr(http_client, "close", None) if owns_http else None
        if close is not None:
            await close()
    return report


async def caller_numbers(settings: Settings) -> list[str]:
    """The settings' caller numbers, then those of campaigns not finished, each once."""
    from voicebot.db.session import make_engine, make_sessionmaker

    numbers = list(settings.twilio_caller_numbers)
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await session.scalars(
                select(Campaign.caller_numbers).where(Campaign.status.not_in(_FINISHED))
            )
            for pool in rows:
                numbers.extend(pool or [])
    finally:
        await engine.dispose()
    return list(dict.fromkeys(numbers))


@twilio_app.command("check")
def check() -> None:
    """Verify the Twilio credentials and every caller number, when Twilio can be reached.

    Exit status: 0 all good, 1 a problem found, 3 Twilio could not be reached.
    """
    from voicebot.cli import _user_errors, load_settings

    settings = load_settings()
    with _user_errors(settings):
        numbers = asyncio.run(caller_numbers(settings))
        report = asyncio.run(check_twilio(settings, numbers))
    for line in report.lines:
        typer.echo(line)
    raise typer.Exit(report.exit_code)


@twilio_app.command("status")
def status() -> None:
    """Show the carrier alarm, if one is open, and the campaigns it paused."""
    from voicebot.cli import _user_errors, load_settings

    settings = load_settings()
    with _user_errors(settings):
        alarm, paused = asyncio.run(_alarm_status(settings))
    if alarm is None:
        typer.echo(f"carrier {settings.carrier}: no alarm; dialing is allowed")
        return
    typer.echo(
        f"ALARM: the carrier ({alarm[0]}) refused this service at {alarm[1]:%Y-%m-%d %H:%M:%S} "
        f"UTC, code {alarm[2]}: {alarm[3]}"
    )
    typer.echo(f"dialing is stopped; paused campaigns: {', '.join(map(str, paused)) or 'none'}")
    typer.echo("fix the cause, run `voicebot twilio clear-alarm`, then resume the campaigns")
    raise typer.Exit(EXIT_PROBLEM)


@twilio_app.command("clear-alarm")
def clear(
    by: Annotated[str | None, typer.Option(help="Who clears it (default: the OS user).")] = None,
) -> None:
    """Close the carrier alarm: campaigns may be resumed again (they stay paused until then)."""
    from voicebot.cli import _user_errors, load_settings

    settings = load_settings()
    with _user_errors(settings):
        cleared = asyncio.run(_clear(settings, by or _os_user()))
    typer.echo("alarm cleared" if cleared else "no open alarm")


async def _alarm_status(
    settings: Settings,
) -> tuple[tuple[str, datetime, str | None, str] | None, list[int]]:
    from voicebot.db.session import make_engine, make_sessionmaker
    from voicebot.dialer.refusals import open_alarm

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            alarm = await open_alarm(session)
            if alarm is None:
                return None, []
            paused = list(
                await session.scalars(
                    select(Campaign.id)
                    .where(Campaign.status == CampaignStatus.PAUSED.value)
                    .order_by(Campaign.id)
                )
            )
            return (alarm.carrier, alarm.raised_at, alarm.code, alarm.message), paused
    finally:
        await engine.dispose()


async def _clear(settings: Settings, by: str) -> int:
    from voicebot.db.session import make_engine, make_sessionmaker
    from voicebot.dialer.refusals import clear_alarm

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            cleared = await clear_alarm(session, by=by, now=datetime.now(UTC))
            await session.commit()
            return cleared
    finally:
        await engine.dispose()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
