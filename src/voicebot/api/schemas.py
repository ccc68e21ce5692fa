"""Request and response bodies of the operations API.

Campaign settings are checked with the same domain constructors the dialer builds its rules with
(``voicebot.domain.campaigns.campaign_rules``), so a campaign the API accepts is one the dialer
can run.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
    model_validator,
)

from voicebot.db.apikeys import check_key_name
from voicebot.domain.campaigns import (
    CallerIdMode,
    MachineAction,
    MachineDetection,
    campaign_rules,
    check_dialog_id,
    check_machine_settings,
)
from voicebot.domain.phones import InvalidPhoneNumber, parse_phone
from voicebot.domain.types import Role


def _e164(value: str) -> str:
    try:
        return parse_phone(value).e164
    except InvalidPhoneNumber as exc:
        raise ValueError(f"{exc}; caller numbers are written +<country code><number>") from None


def _minute(value: time) -> time:
    if value.tzinfo is not None or value.second or value.microsecond:
        raise ValueError("a calling-window time is a local wall-clock time HH:MM")
    return value


WallTime = Annotated[
    time, AfterValidator(_minute), PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str)
]
CampaignName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]
DialogId = Annotated[str, AfterValidator(check_dialog_id)]
CallerNumber = Annotated[str, AfterValidator(_e164)]
Seconds = Annotated[int, Field(ge=0, le=30 * 86_400)]


class CallingWindowBody(BaseModel):
    """Local hours in the borrower's time zone; ``start == end`` means all day; a window may
    cross midnight. Weekdays: 0=Monday … 6=Sunday, the day a window opens on."""

    model_config = ConfigDict(extra="forbid")

    start: WallTime = time(8, 0)
    end: WallTime = time(21, 0)
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: list(range(7)), min_length=1, max_length=7
    )

    @field_validator("weekdays")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        return sorted(set(value))


class CampaignSettings(BaseModel):
    """Everything about a campaign but its name and dialog."""

    model_config = ConfigDict(extra="forbid")

    calling_window: CallingWindowBody = Field(default_factory=CallingWindowBody)
    max_attempts: int = Field(5, ge=1, le=100, description="Attempts per call-back chain")
    max_attempts_per_period: int = Field(7, ge=1, le=1_000, description="Per loan, rolling")
    attempt_period_days: int = Field(7, ge=1, le=366)
    max_conversations_per_day: int = Field(3, ge=1, le=100, description="Per borrower")
    quiet_period_hours: int = Field(0, ge=0, le=24 * 366, description="After a conversation")
    retry_delays: dict[str, Seconds] = Field(
        default_factory=dict,
        description="Seconds before a retry, per disposition (no_answer, busy, …); "
        "unlisted dispositions use the defaults",
    )
    switch_number_after: int = Field(2, ge=1, le=100)
    concurrency_limit: int = Field(10, ge=1, le=10_000, description="Live calls at once")
    caller_numbers: list[CallerNumber] = Field(default_factory=list, max_length=100)
    caller_id_mode: CallerIdMode = Field(
        CallerIdMode.ROTATE,
        description="rotate: the caller numbers in turn; region: the one sharing the borrower's "
        "country and area code",
    )
    ring_timeout_seconds: int = Field(
        30, ge=5, le=600, description="Ringing before a call ends as no-answer"
    )
    time_limit_seconds: int = Field(
        1800, ge=60, le=14_400, description="The carrier ends any call longer than this"
    )
    machine_detection: MachineDetection = Field(
        MachineDetection.OFF,
        description="Answering-machine detection (asynchronous): off, Enable, DetectMessageEnd",
    )
    machine_action: MachineAction = Field(
        MachineAction.HANG_UP,
        description="On an answering machine: hang_up, or leave_message (the dialog's voicemail, "
        "after the beep: needs DetectMessageEnd)",
    )
    record_calls: bool = Field(
        False, description="Record calls at the carrier (the dialog's recording notice plays first)"
    )

    @model_validator(mode="after")
    def _rules_hold(self) -> CampaignSettings:
        check_machine_settings(self.machine_detection, self.machine_action)
        window = self.calling_window
        campaign_rules(
            window_start=window.start,
            window_end=window.end,
            weekdays=frozenset(window.weekdays),
            max_attempts_per_period=self.max_attempts_per_period,
            attempt_period_days=self.attempt_period_days,
            max_conversations_per_day=self.max_conversations_per_day,
            quiet_period_hours=self.quiet_period_hours,
            max_attempts=self.max_attempts,
            retry_delays=self.retry_delays,
            switch_number_after=self.switch_number_after,
        )
        return self


class CampaignCreate(CampaignSettings):
    name: CampaignName
    dialog_id: DialogId


class CallingWindowPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: Any = None
    end: Any = None
    weekdays: Any = None


class CampaignUpdate(BaseModel):
    """Any subset of a campaign's fields (and of its calling window); the campaign that results
    is checked as a whole, exactly as a new one would be."""

    model_config = ConfigDict(extra="forbid")

    name: Any = None
    dialog_id: Any = None
    calling_window: CallingWindowPatch | None = None
    max_attempts: Any = None
    max_attempts_per_period: Any = None
    attempt_period_days: Any = None
    max_conversations_per_day: Any = None
    quiet_period_hours: Any = None
    retry_delays: Any = None
    switch_number_after: Any = None
    concurrency_limit: Any = None
    caller_numbers: Any = None
    caller_id_mode: Any = None
    ring_timeout_seconds: Any = None
    time_limit_seconds: Any = None
    machine_detection: Any = None
    machine_action: Any = None
    record_calls: Any = None


class CampaignOut(BaseModel):
    id: int
    name: str
    dialog_id: str
    status: str
    calling_window: CallingWindowBody
    max_attempts: int
    max_attempts_per_period: int
    attempt_period_days: int
    max_conversations_per_day: int
    quiet_period_hours: int
    retry_delays: dict[str, int]
    switch_number_after: int
    concurrency_limit: int
    caller_numbers: list[str]
    caller_id_mode: str
    ring_timeout_seconds: int
    time_limit_seconds: int
    machine_detection: str
    machine_action: str
    record_calls: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    total: int
    limit: int
    offset: int


class Progress(BaseModel):
    campaign_id: int
    status: str
    contacts: int = Field(description="Contacts with a call-back in this campaign")
    callbacks: dict[str, int] = Field(description="Call-backs by status")
    calls: dict[str, int] = Field(description="Finished calls by disposition")
    live_calls: int


class PhoneOut(BaseModel):
    number: str = Field(description="E.164; masked for the analyst role")
    position: int = Field(description="0 is the primary number")
    status: str
    consecutive_failures: int


class CallBackOut(BaseModel):
    id: int
    campaign_id: int
    status: str
    reason: str
    attempt: int
    due_at: datetime
    deferred_reason: str | None


class ContactOut(BaseModel):
    id: int
    external_id: str
    name: str = Field(description="Masked for the analyst role, as the numbers are")
    time_zone: str
    loan_id: str | None
    amount_due: Decimal | None
    currency: str | None
    due_date: date | None
    days_past_due: int | None
    fields: dict[str, Any] = Field(
        description="The import's other columns; for analysts, numbers and the name masked"
    )
    phones: list[PhoneOut]
    created_at: datetime
    updated_at: datetime
    callbacks: list[CallBackOut] | None = Field(
        default=None, description="Only when one contact is read"
    )


class ContactPage(BaseModel):
    items: list[ContactOut]
    limit: int
    offset: int


class RowErrorOut(BaseModel):
    row: int = Field(description="CSV: line in the file (header = 1); JSON: index in contacts")
    field: str | None
    reason: str


class NotDialableOut(BaseModel):
    external_id: str
    row: int
    reason: str


class ImportOut(BaseModel):
    received: int = Field(description="Rows in the upload")
    created: int
    updated: int
    skipped: int = Field(description="Rows not imported because they are invalid")
    callbacks_created: int
    opted_out_phones: int = Field(description="Numbers on the do-not-call list, stored opted out")
    not_dialable: list[NotDialableOut] = Field(
        description="Imported contacts left without a call-back: no number may be dialed"
    )
    errors: list[RowErrorOut]


class DoNotCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    default_region: str | None = Field(
        default=None, description="For a national number, its region (e.g. CN)"
    )


class DoNotCallOut(BaseModel):
    phone: str = Field(description="E.164; masked for the analyst role")
    reason: str
    source: str
    created_at: datetime


class DoNotCallPage(BaseModel):
    items: list[DoNotCallOut]
    total: int
    limit: int
    offset: int


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditOut]
    limit: int
    offset: int


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # One line of printable text: listings and the audit log show it.
    name: Annotated[
        str, StringConstraints(min_length=1, max_length=200), AfterValidator(check_key_name)
    ]
    role: Role


class ApiKeyRoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class ApiKeyOut(BaseModel):
    """A key as listed: its prefix names it (``vb_<prefix>_…``); the secret is never shown."""

    model_config = ConfigDict(from_attributes=True)

    prefix: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The whole key, shown this once: only its hash is stored")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]
