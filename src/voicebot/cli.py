"""The ``voicebot`` command. Settings come from ``VOICEBOT_*`` environment variables.

A user's mistake (a bad setting, an unreachable database, a missing migration directory) ends with
one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from voicebot.cli_dialog import chat, dialog_app
from voicebot.cli_twilio import twilio_app
from voicebot.config import Settings
from voicebot.db.session import require_sqlite_directory
from voicebot.domain.types import Role

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(
    name="voicebot",
    help="Voice-bot dialer for car-loan follow-up calls.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for the /v1 API.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(apikey_app, name="apikey")

EXIT_USER_ERROR = 2
EXIT_UNAVAILABLE = 1
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A problem the user can fix; printed as one line."""

    def __init__(self, message: str, *, exit_code: int = EXIT_USER_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@contextlib.contextmanager
def _user_errors(settings: Settings | None = None) -> Iterator[None]:
    try:
        yield
    except CliError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except (OSError, SQLAlchemyError) as exc:
        where = f" at {_safe_url(settings.database_url)}" if settings else ""
        reason = _reason(exc)
        if _NO_TABLE.search(reason):
            reason += " (has the schema been made? run `voicebot db upgrade`)"
        _fail(f"cannot use the database{where}: {reason}", EXIT_UNAVAILABLE)


# A table the command needs is missing, in SQLite's and PostgreSQL's words.
_NO_TABLE = re.compile(r"no such table|relation \S+ does not exist")


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"voicebot: error: {message}", err=True)
    raise typer.Exit(code)


def _reason(exc: BaseException) -> str:
    """The driver's own words, first line only (SQLAlchemy's wrapper adds SQL and links)."""
    original = getattr(exc, "orig", None) or exc
    message = str(original).strip()
    return message.splitlines()[0] if message else type(original).__name__


def _safe_url(url: str) -> str:
    with contextlib.suppress(Exception):
        return make_url(url).render_as_string(hide_password=True)
    return "(unparseable URL)"


def load_settings() -> Settings:
    """Settings from the environment, or a one-line error naming the bad variable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "VOICEBOT_" + "_".join(str(part) for part in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(
                message if not error["loc"] or name in message else f"{name}: {message}"
            )
        _fail("; ".join(problems) or "invalid settings", EXIT_USER_ERROR)
    try:
        # aiosqlite reports a missing folder from its worker thread, after the loop has closed,
        # with a traceback; say it up front instead.
        require_sqlite_directory(settings.database_url)
    except FileNotFoundError as exc:
        where = _safe_url(settings.database_url)
        _fail(f"cannot use the database at {where}: {exc}", EXIT_UNAVAILABLE)
    return settings


class LogLevelName(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _configure_logging(level: LogLevelName, settings: Settings | None = None) -> None:
    """Plain text, or JSON lines (VOICEBOT_LOG_JSON), without numbers or secrets."""
    from voicebot.logs import configure_logging

    configure_logging(
        level.value,
        json_lines=settings is not None and settings.log_json,
        secrets=[] if settings is None else list(settings.twilio_auth_tokens),
    )


LogLevel = Annotated[LogLevelName, typer.Option("--log-level", help="How much to log.")]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [VOICEBOT_HOST].")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port [VOICEBOT_PORT].")
    ] = None,
    no_dialer: Annotated[
        bool, typer.Option("--no-dialer", help="Serve the API and webhooks only.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Processes sharing the port, each with its own dialer unless --no-dialer "
            "(PostgreSQL only).",
        ),
    ] = 1,
    log_level: LogLevel = LogLevelName.INFO,
) -> None:
    """Serve the API and the carrier webhooks, with the dialer inside unless --no-dialer."""
    import uvicorn

    from voicebot import serving
    from voicebot.app import create_app

    settings = load_settings()
    _configure_logging(log_level, settings)
    with _user_errors(settings):
        _check_database(settings)
        options: dict[str, Any] = {
            "host": host or settings.host,
            "port": settings.port if port is None else port,
            "log_level": log_level.value,
            # Webhook signatures use VOICEBOT_PUBLIC_BASE_URL, not forwarded headers; these only
            # make the access log show the real client behind a local proxy.
            "proxy_headers": True,
            # uvicorn's own loggers pass their records to ours, which redact them.
            "log_config": None,
        }
        if workers == 1:
            application = create_app(settings, run_dialer=False if no_dialer else None)
            uvicorn.run(application, **options)
            return
        if not settings.is_postgres:
            raise CliError(
                "--workers needs PostgreSQL (VOICEBOT_DATABASE_URL=postgresql+asyncpg://…): "
                "the embedded SQLite database has a single writer"
            )
        # Each worker is a fresh process that builds its app from the environment.
        os.environ[_WORKER_LOG_LEVEL] = log_level.value
        if no_dialer:
            os.environ["VOICEBOT_DIALER_ENABLED"] = "false"
        if not serving.supported():
            # One socket shared by the workers (uvicorn's supervisor): connections may bunch up.
            uvicorn.run("voicebot.cli:worker_app", factory=True, workers=workers, **options)
            return
        bind_host, bind_port = options.pop("host"), options.pop("port")
        try:
            serving.check_port_free(bind_host, bind_port)
        except OSError as exc:
            raise CliError(f"cannot serve on {bind_host}:{bind_port}: {exc.strerror}") from exc
        spec = serving.WorkerSpec("voicebot.cli:worker_app", bind_host, bind_port, options)
        if serving.Supervisor(spec, workers).run() != 0:
            raise CliError("a worker failed to start; see its log above", exit_code=1)


_WORKER_LOG_LEVEL = "VOICEBOT_WORKER_LOG_LEVEL"


def worker_app() -> FastAPI:
    """The app of one ``serve --workers`` process, configured as ``serve`` configures its own."""
    from voicebot.app import create_app

    settings = load_settings()
    _configure_logging(LogLevelName(os.environ.get(_WORKER_LOG_LEVEL, "info")), settings)
    return create_app(settings)


@app.command(
    help="Run a dialer alone (no HTTP API) until SIGINT or SIGTERM.\n\n"
    "Any number of dialers may share one PostgreSQL database. The carrier's callbacks go to the "
    "service at VOICEBOT_PUBLIC_BASE_URL, so a `voicebot serve` must run there."
)
def dialer(log_level: LogLevel = LogLevelName.INFO) -> None:
    settings = load_settings()
    _configure_logging(log_level, settings)
    with _user_errors(settings):
        _check_database(settings)
        asyncio.run(_run_dialer(settings))


async def _run_dialer(settings: Settings) -> None:
    from voicebot.db.session import make_engine, make_sessionmaker
    from voicebot.dialer.loop import Dialer, freeze_startup_heap
    from voicebot.telephony.factory import build_carrier

    engine = make_engine(settings.database_url, pool_size=settings.database_pool_size)
    carrier = build_carrier(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log = logging.getLogger("voicebot.dialer")
    log.info("dialer %s started", settings.dialer_id)
    dialer = Dialer(settings, make_sessionmaker(engine), carrier)
    freeze_startup_heap()  # the dialer's process lives as long as what it has loaded
    try:
        await dialer.run(stop)
    finally:
        await carrier.aclose()
        await engine.dispose()
        log.info("dialer %s stopped", settings.dialer_id)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the migrations to VOICEBOT_DATABASE_URL (creates the schema on an empty database)."""
    from voicebot.db import migrate

    settings = load_settings()
    with _user_errors(settings):
        try:
            migrate.upgrade(settings.database_url, revision)
        except migrate.MigrationsNotFound as exc:
            raise CliError(str(exc)) from None
    typer.echo(f"database at {_safe_url(settings.database_url)} is at revision {revision}")


@apikey_app.command("create")
def apikey_create(
    role: Annotated[Role, typer.Option(help="admin, operator or analyst.")] = Role.OPERATOR,
    name: Annotated[str | None, typer.Option(help="Who or what the key is for.")] = None,
) -> None:
    """Create an API key and print it once: only its hash is stored."""
    from voicebot.db.apikeys import check_key_name

    settings = load_settings()
    with _user_errors(settings):
        try:
            checked = check_key_name(f"{role.value} key" if name is None else name)
        except ValueError as exc:
            raise CliError(f"--name: {exc}") from None
        key = asyncio.run(_create_api_key(settings, role, checked))
    typer.echo(key)
    typer.echo(f"Created a {role.value} key. Store it now: it cannot be shown again.", err=True)


async def _create_api_key(settings: Settings, role: Role, name: str) -> str:
    from voicebot.db.apikeys import create_audited_api_key

    async with _keys_session(settings) as session:
        key, _ = create_audited_api_key(
            session, role=role, name=name, actor=f"cli:{_os_user()}", now=datetime.now(UTC)
        )
        await session.commit()
    return key


@apikey_app.command("list")
def apikey_list(
    include_revoked: Annotated[bool, typer.Option("--all", help="Revoked keys too.")] = False,
) -> None:
    """The keys, newest first: prefix, role, name and dates. Never a secret."""
    settings = load_settings()
    with _user_errors(settings):
        rows = asyncio.run(_list_api_keys(settings, include_revoked))
    if not rows:
        typer.echo("no API keys" if include_revoked else "no live API keys", err=True)
    for row in rows:
        typer.echo(row)


async def _list_api_keys(settings: Settings, include_revoked: bool) -> list[str]:
    from voicebot.db.apikeys import list_api_keys

    async with _keys_session(settings) as session:
        keys = await list_api_keys(session, include_revoked=include_revoked)
    return [
        f"{k.prefix}  {k.role:<8}  created {k.created_at:%Y-%m-%d %H:%M}Z"
        + (f"  revoked {k.revoked_at:%Y-%m-%d %H:%M}Z" if k.revoked_at else "")
        + f"  {k.name}"
        for k in keys
    ]


KeyArgument = Annotated[
    str, typer.Argument(help="The key's prefix (as `voicebot apikey list` shows it), or the key.")
]


@apikey_app.command("revoke")
def apikey_revoke(key: KeyArgument) -> None:
    """Revoke a key for good. Each running server refuses it once what it verified of the key
    expires (VOICEBOT_API_KEY_CACHE_SECONDS)."""
    settings = load_settings()
    with _user_errors(settings):
        prefix = _prefix_of(key)
        asyncio.run(_change_api_key(settings, prefix, None))
    typer.echo(f"revoked API key {prefix}")


@apikey_app.command("set-role")
def apikey_set_role(
    key: KeyArgument,
    role: Annotated[Role, typer.Option(help="admin, operator or analyst.")],
) -> None:
    """Give a key another role (audited). Running servers apply it as for a revocation."""
    settings = load_settings()
    with _user_errors(settings):
        prefix = _prefix_of(key)
        asyncio.run(_change_api_key(settings, prefix, role))
    typer.echo(f"API key {prefix} now has the {role.value} role")


def _prefix_of(given: str) -> str:
    from voicebot.db.apikeys import PREFIX_PATTERN, key_prefix

    prefix = given if PREFIX_PATTERN.fullmatch(given) else key_prefix(given)
    if prefix is None:
        raise CliError(
            "not an API key or a key's prefix: a prefix is 12 hex characters, "
            "as `voicebot apikey list` shows it"
        )
    return prefix


async def _change_api_key(settings: Settings, prefix: str, role: Role | None) -> None:
    """Revoke the key (``role`` None) or give it ``role``, audited as this OS user's doing."""
    from voicebot.db.apikeys import revoke_api_key, set_api_key_role

    actor, now = f"cli:{_os_user()}", datetime.now(UTC)
    async with _keys_session(settings) as session:
        if role is None:
            key = await revoke_api_key(session, prefix, actor=actor, now=now)
        else:
            key = await set_api_key_role(session, prefix, role, actor=actor, now=now)
        if key is None:
            raise CliError(f"no live API key has the prefix {prefix}")
        await session.commit()


@contextlib.asynccontextmanager
async def _keys_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    from voicebot.db.session import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            yield session
    finally:
        await engine.dispose()


@app.command(
    help="Run the embedded default end to end and print what happened.\n\n"
    "A fresh SQLite file, the real HTTP server and dialer on a free local port, and the simulated "
    "carrier calling back over HTTP and talking over the media stream: scripted borrowers speak "
    "(eSpeak NG), the bot hears them with Vosk and answers with pyttsx3. The ko-KR dialog by "
    "default (its model installs offline); the demo drives it all through the /v1 API and prints "
    "each conversation's transcript and outcomes."
)
def demo(
    contacts: Annotated[int, typer.Option(min=1, max=1000, help="How many borrowers.")] = 10,
    dialog: Annotated[
        str,
        typer.Option(
            help="A dialog id in the dialogs folder, or a dialog file; its language needs a Vosk "
            "model (VOICEBOT_VOSK_MODEL_<LANG>)."
        ),
    ] = "car_loan_followup.ko-KR",
    speed: Annotated[
        float,
        typer.Option(min=0.5, max=10, help="The phones' clock against real time (1: real time)."),
    ] = 3.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Progress to stderr; the last stdout line is JSON.")
    ] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the demo's SQLite file.")] = False,
    timeout: Annotated[float, typer.Option(min=5, help="Give up after this many seconds.")] = 120.0,
) -> None:
    from voicebot.demo import DemoError, DemoOptions, run_demo, summary_json

    _configure_logging(LogLevelName.WARNING)

    def say(line: str) -> None:
        typer.echo(line, err=as_json)

    options = DemoOptions(
        contacts=contacts, keep=keep, timeout_seconds=timeout, dialog=dialog, speed=speed
    )
    with _user_errors():
        try:
            summary = asyncio.run(run_demo(options, say))
        except DemoError as exc:
            raise CliError(str(exc), exit_code=EXIT_UNAVAILABLE) from None
    for line in summary.lines():
        say(line)
    if as_json:
        typer.echo(summary_json(summary))
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if not summary.finished:
        _fail(f"calls were still pending after {timeout:g} s", EXIT_UNAVAILABLE)


def _check_database(settings: Settings) -> None:
    """Fail fast, with a clear line, when the database cannot be reached or has no schema."""

    async def ping() -> bool:
        from voicebot.db.session import make_engine

        engine = make_engine(settings.database_url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
                has_schema: bool = await conn.run_sync(
                    lambda sync_conn: inspect(sync_conn).has_table("campaigns")
                )
        finally:
            await engine.dispose()
        return has_schema

    if not asyncio.run(ping()):
        raise CliError(
            f"the database at {_safe_url(settings.database_url)} has no schema: "
            "run `voicebot db upgrade` first"
        )


def _os_user() -> str:
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "unknown"


# Script authors' tools (voicebot.cli_dialog): `voicebot dialog check FILE…`, `voicebot chat`.
app.add_typer(dialog_app, name="dialog")
app.command("chat")(chat)
# `voicebot twilio check|status|clear-alarm` (voicebot.cli_twilio).
app.add_typer(twilio_app, name="twilio")
