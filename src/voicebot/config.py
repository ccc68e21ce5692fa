"""Settings, read from ``VOICEBOT_*`` environment variables.

Build them with ``Settings()`` where the process starts (the app factory, the CLI); nothing reads
them at import time.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "simulated-auth-token"}


def _default_dialogs_dir() -> str:
    """``dialogs/`` of the source checkout this package runs from, else of the working directory."""
    checkout = Path(__file__).resolve().parents[2] / "dialogs"
    return str(checkout if checkout.is_dir() else Path("dialogs"))


class Settings(BaseSettings):
    # No setting is infinite or NaN (``inf`` passes ``gt=0``, then overflows a date).
    model_config = SettingsConfigDict(env_prefix="VOICEBOT_", extra="ignore", allow_inf_nan=False)

    environment: Literal["development", "test", "production"] = "development"

    # The embedded default is a SQLite file; production uses postgresql+asyncpg://…
    database_url: str = "sqlite+aiosqlite:///./voicebot.db"
    database_pool_size: int = Field(default=10, ge=1, le=200)

    # A verified API key is remembered in each process for this long, so a request does not pay
    # a database lookup for its key; a revoked key therefore keeps working for at most this
    # long. 0 checks the database on every request.
    api_key_cache_seconds: float = Field(default=10.0, ge=0, le=300)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # The URL Twilio (or the simulated carrier) reaches this service at. Webhook signatures are
    # checked against it, so behind a proxy it must be the public URL, not the local one.
    public_base_url: str = "http://127.0.0.1:8000"

    # "twilio" places real calls through Twilio's REST API; "simulated" plays them out locally.
    carrier: Literal["simulated", "twilio"] = "simulated"
    # Webhook signatures (X-Twilio-Signature) are computed with this token; the simulated carrier
    # signs its callbacks with it exactly as Twilio does. A SecretStr: it never shows in a repr
    # or a log line.
    twilio_account_sid: str = Field(
        default="AC00000000000000000000000000000000", pattern=r"^AC[0-9a-fA-F]{32}$"
    )
    twilio_auth_token: SecretStr = SecretStr("simulated-auth-token")
    # While the account's auth token is rotated (Twilio's secondary token promoted to primary),
    # callbacks signed with the token before, and media-stream tokens issued with it, are still
    # accepted: set this to the old token for the rotation, then unset it.
    twilio_previous_auth_token: SecretStr | None = None
    # Caller numbers for campaigns that name none (E.164, comma-separated or a JSON list).
    twilio_caller_numbers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, max_length=100
    )
    # Seconds one REST request to Twilio may take.
    twilio_http_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # A carrier that says "too many requests" (HTTP 429, 20429, 10004): the call-back is dialed
    # again after this long, without counting as an attempt.
    carrier_throttle_backoff_seconds: float = Field(default=10.0, gt=0, le=3600)

    # Simulated carrier: seconds of ringing before the call is answered (or not), and an optional
    # JSON-lines file where it appends every dial it places (used by the concurrency tests).
    simulated_ring_seconds: float = Field(default=0.2, ge=0, le=3600)
    simulated_talk_seconds: float = Field(default=0.3, ge=0, le=86_400)
    # A test log the operator opts into: one JSON line per dial (sid, call id, call-back id and
    # the full E.164 number, so tests can tell every dial apart). It holds phone numbers: never
    # set it in production.
    simulated_dial_log: str | None = None
    # Simulated carrier: answered calls fetch the answer URL and talk over the media stream (a
    # scripted borrower speaking eSpeak NG audio), instead of just waiting ``talk_seconds``.
    simulated_voice: bool = False

    # Conversations (voicebot.calls): where dialog files live (``<dialog_id>.yaml``), how long the
    # token binding a media stream to its call is valid, and endpointing: the silence that ends
    # an utterance and the audio kept from before speech started (the recogniser hears it too).
    dialogs_dir: str = Field(default_factory=lambda: _default_dialogs_dir())
    media_stream_token_seconds: float = Field(default=30.0, gt=0, le=3600)
    media_end_of_speech_ms: int = Field(default=160, ge=60, le=3000)
    media_preroll_ms: int = Field(default=100, ge=0, le=1000)
    # With asynchronous answering-machine detection the bot waits, silent, for the result before
    # it speaks (Twilio reports a person within seconds, a machine at its beep, and gives up at
    # 30 s): a voicemail greeting never uses up the dialog's reprompts before the message.
    media_machine_detection_wait_seconds: float = Field(default=30.0, ge=0, le=120)

    # Dialer
    dialer_enabled: bool = True
    dialer_id: str = Field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    # On PostgreSQL a round holds an advisory lock per loan of its batch until its calls are
    # recorded (dialer.gate): dialers x batch size must fit the server's lock table
    # (max_locks_per_transaction x max_connections, 6,400 by default).
    dialer_batch_size: int = Field(default=200, ge=1, le=2_000)
    dialer_lease_seconds: float = Field(default=120.0, gt=0, le=86_400)
    dialer_poll_seconds: float = Field(default=1.0, gt=0, le=3600)
    # A call the carrier has not reported ended this long after the dial lost its final webhook:
    # the dialer ends it as failed, freeing its campaign's slot. Longer than any call may last
    # (Twilio's own time limit defaults to 4 hours).
    call_stale_after_seconds: float = Field(default=4.25 * 3600, gt=0, le=30 * 86_400)
    # Calls per second across every dialer process sharing the database (Twilio's default is 1).
    carrier_calls_per_second: float = Field(default=1.0, gt=0, le=1e9)

    # Contacts import
    import_max_rows: int = Field(default=100_000, ge=1)
    import_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)

    # Notifications (voicebot.notifications): signed events to the configured endpoints, sent by
    # a worker in the app; a failed delivery is retried after base·2^(n-1) seconds (at most the
    # max) until it is give_up_hours old. Broken promises are looked for every sweep seconds.
    notifications_enabled: bool = True
    notification_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    notification_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    notification_retry_base_seconds: float = Field(default=2.0, gt=0, le=3600)
    notification_retry_max_seconds: float = Field(default=600.0, gt=0, le=86_400)
    notification_give_up_hours: float = Field(default=72.0, gt=0, le=24 * 30)
    promise_sweep_seconds: float = Field(default=300.0, gt=0, le=86_400)
    # Logs as JSON lines (one object per record, with the call id) instead of plain text.
    log_json: bool = False

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if value.startswith("sqlite://") and not value.startswith("sqlite+aiosqlite://"):
            return "sqlite+aiosqlite://" + value.split("://", 1)[1]
        if not (
            value.startswith("postgresql+asyncpg://") or value.startswith("sqlite+aiosqlite://")
        ):
            raise ValueError(
                "VOICEBOT_DATABASE_URL must be postgresql+asyncpg://… or sqlite+aiosqlite://…"
            )
        return value

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("VOICEBOT_PUBLIC_BASE_URL must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("twilio_caller_numbers", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("twilio_caller_numbers")
    @classmethod
    def _e164_callers(cls, value: list[str]) -> list[str]:
        for number in value:
            if not _E164.fullmatch(number):
                raise ValueError(
                    f"VOICEBOT_TWILIO_CALLER_NUMBERS: {number!r} is not an E.164 number "
                    "(+<country code><number>)"
                )
        return value

    @model_validator(mode="after")
    def _twilio_needs_real_credentials(self) -> Settings:
        if self.carrier != "twilio":
            return self
        if self.twilio_auth_token.get_secret_value().lower() in _PLACEHOLDER_SECRETS:
            raise ValueError("VOICEBOT_CARRIER=twilio needs VOICEBOT_TWILIO_AUTH_TOKEN")
        if self.twilio_account_sid == "AC" + "0" * 32:
            raise ValueError("VOICEBOT_CARRIER=twilio needs VOICEBOT_TWILIO_ACCOUNT_SID")
        return self

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment != "production":
            return self
        if self.carrier == "twilio" and not self.public_base_url.startswith("https://"):
            raise ValueError(
                "VOICEBOT_PUBLIC_BASE_URL must be https:// in production: Twilio's media "
                "streams need wss://"
            )
        if self.twilio_auth_token.get_secret_value().lower() in _PLACEHOLDER_SECRETS:
            raise ValueError(
                "VOICEBOT_TWILIO_AUTH_TOKEN must be set to the real token in production"
            )
        if self.database_url.startswith("sqlite"):
            raise ValueError("production runs on PostgreSQL: set VOICEBOT_DATABASE_URL")
        return self

    @field_validator("twilio_previous_auth_token")
    @classmethod
    def _unset_when_empty(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None or not value.get_secret_value().strip() else value

    @property
    def twilio_auth_tokens(self) -> tuple[str, ...]:
        """The tokens a signature or a media-stream token may be made with: the account's own,
        then the one before it while a rotation lasts."""
        current = self.twilio_auth_token.get_secret_value()
        previous = self.twilio_previous_auth_token
        if previous is None or previous.get_secret_value() == current:
            return (current,)
        return (current, previous.get_secret_value())

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")
