"""The data model. Alembic migrations in ``migrations/`` must match it (a test checks)."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from voicebot.db.types import BigIntPK, JSONDoc, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _now_default() -> Any:
    return text("CURRENT_TIMESTAMP")


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    dialog_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)

    # Calling window in the borrower's local time, and the compliance caps.
    window_start: Mapped[time] = mapped_column(Time, default=time(8, 0))
    window_end: Mapped[time] = mapped_column(Time, default=time(21, 0))
    window_weekdays: Mapped[list[int]] = mapped_column(JSONDoc, default=lambda: list(range(7)))
    max_attempts_per_period: Mapped[int] = mapped_column(Integer, default=7)
    attempt_period_days: Mapped[int] = mapped_column(Integer, default=7)
    max_conversations_per_day: Mapped[int] = mapped_column(Integer, default=3)
    quiet_period_hours: Mapped[int] = mapped_column(Integer, default=0)

    # Retries: attempts per call-back chain, delay in seconds per disposition, number switching.
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    retry_delays: Mapped[dict[str, int]] = mapped_column(JSONDoc, default=dict)
    switch_number_after: Mapped[int] = mapped_column(Integer, default=2)

    concurrency_limit: Mapped[int] = mapped_column(Integer, default=10)
    # Calls of this campaign not yet final: raised in the dialer's dial transaction, lowered when
    # a call's final status is recorded, so the concurrency limit holds across dialer processes.
    live_calls: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    caller_numbers: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    # How a dial picks its caller number: "rotate" through the pool, or "region" (the number
    # sharing the borrower's country and area code, else the next in turn).
    caller_id_mode: Mapped[str] = mapped_column(
        String(16), default="rotate", server_default=text("'rotate'")
    )

    # The carrier side of a call (see voicebot.telephony.carrier.CallOptions): seconds of ringing
    # before no-answer, the longest call, answering-machine detection ("off", "Enable",
    # "DetectMessageEnd") and what to do on a machine ("hang_up" or "leave_message"), recording.
    ring_timeout_seconds: Mapped[int] = mapped_column(
        Integer, default=30, server_default=text("30")
    )
    time_limit_seconds: Mapped[int] = mapped_column(
        Integer, default=1800, server_default=text("1800")
    )
    machine_detection: Mapped[str] = mapped_column(
        String(24), default="off", server_default=text("'off'")
    )
    machine_action: Mapped[str] = mapped_column(
        String(16), default="hang_up", server_default=text("'hang_up'")
    )
    record_calls: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Contact(Base):
    """One borrower's loan: who to call, where they live, and what the dialog may mention."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    loan_id: Mapped[str | None] = mapped_column(String(128), index=True)
    amount_due: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    due_date: Mapped[date | None] = mapped_column(Date)
    days_past_due: Mapped[int | None] = mapped_column(Integer)
    fields: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())

    phones: Mapped[list[ContactPhone]] = relationship(
        back_populates="contact", order_by="ContactPhone.position", cascade="all, delete-orphan"
    )


class ContactPhone(Base):
    """A contact's numbers in dialing order: position 0 is the primary, the rest alternates."""

    __tablename__ = "contact_phones"
    __table_args__ = (UniqueConstraint("contact_id", "e164"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    e164: Mapped[str] = mapped_column(String(20), index=True)
    status: Mapped[str] = mapped_column(String(16), default="valid")
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)

    contact: Mapped[Contact] = relationship(back_populates="phones")


class CallBack(Base):
    """A due call for one contact in one campaign: the dialer's work queue."""

    __tablename__ = "callbacks"
    __table_args__ = (
        # The claim query walks this index in order and stops at its LIMIT.
        Index(
            "ix_callbacks_claim",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_callbacks_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'claimed'"),
            sqlite_where=text("status = 'claimed'"),
        ),
        Index("ix_callbacks_campaign_id_status", "campaign_id", "status"),
        Index("ix_callbacks_contact_id", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    phone_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_phones.id", ondelete="SET NULL")
    )
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempt: Mapped[int] = mapped_column(Integer, default=1)  # which attempt this call-back makes
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(String(32), default="initial")
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    deferred_reason: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())


class Call(Base):
    """One dial of one call-back, from the request to the carrier until the call ends."""

    __tablename__ = "calls"
    # The dialer inserts a row per dial and updates it once the carrier accepts, so every index
    # here is paid twice per call: only the ones a query walks are kept, and those on columns
    # that are mostly NULL (or only matter when set) are partial.
    __table_args__ = (
        Index("ix_calls_loan_key_created_at", "loan_key", "created_at"),
        # The gate's conversation cap reads only conversed calls.
        Index(
            "ix_calls_contact_id_answered_at",
            "contact_id",
            "answered_at",
            postgresql_where=text("conversed"),
            sqlite_where=text("conversed"),
        ),
        Index("ix_calls_campaign_id_status", "campaign_id", "status"),
        Index("ix_calls_callback_id", "callback_id"),
        Index(
            "uq_calls_carrier_sid",
            "carrier_sid",
            unique=True,
            postgresql_where=text("carrier_sid IS NOT NULL"),
            sqlite_where=text("carrier_sid IS NOT NULL"),
        ),
        Index(
            "uq_calls_stream_sid",
            "stream_sid",
            unique=True,
            postgresql_where=text("stream_sid IS NOT NULL"),
            sqlite_where=text("stream_sid IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # The call-back fixes the campaign and the contact: its key is the one checked (deleting a
    # campaign or a contact cascades through its call-backs to their calls). campaign_id and
    # contact_id are copies for the gate's and reports' queries; foreign keys on them would lock
    # the campaign row (a hot one: live_calls) and the contact on every dial for nothing more.
    callback_id: Mapped[int] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(BigIntPK)
    contact_id: Mapped[int] = mapped_column(BigIntPK)
    phone_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_phones.id", ondelete="SET NULL")
    )
    # The loan the attempt counts against (contacts.loan_id, or "contact:<id>" without one).
    loan_key: Mapped[str] = mapped_column(String(140))
    attempt: Mapped[int] = mapped_column(Integer)
    to_number: Mapped[str] = mapped_column(String(20))
    from_number: Mapped[str | None] = mapped_column(String(20))
    carrier_sid: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="initiating")
    answered_by: Mapped[str | None] = mapped_column(String(32))
    # Read per campaign (ix_calls_campaign_id_status), never on its own: no index.
    disposition: Mapped[str | None] = mapped_column(String(32))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    conversed: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    # The conversation (voicebot.calls): the media stream bound to the call (one per call), how
    # the dialog ended (its end reason, e.g. completed, opted_out, hung_up), and what went wrong
    # on the stream ("<code>: <message>"), if anything did.
    stream_sid: Mapped[str | None] = mapped_column(String(64))
    end_state: Mapped[str | None] = mapped_column(String(64))
    stream_error: Mapped[str | None] = mapped_column(Text)
    # The carrier's recording of the call, once its recording-status callback said it is ready.
    recording_sid: Mapped[str | None] = mapped_column(String(64))
    recording_url: Mapped[str | None] = mapped_column(Text)
    recording_duration_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())


class CarrierEvent(Base):
    """Every webhook the carrier sent, raw; ``dedupe_key`` makes a repeated event a no-op."""

    __tablename__ = "carrier_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CarrierAlarm(Base):
    """The carrier refused this service itself (bad credentials, a suspended account): dialing
    stops until an operator clears the alarm. An open alarm has no ``cleared_at``."""

    __tablename__ = "carrier_alarms"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    carrier: Mapped[str] = mapped_column(String(32))
    code: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cleared_by: Mapped[str | None] = mapped_column(String(128))


class Outcome(Base):
    """What a conversation established: a confirmation, a promise to pay, a complaint, …"""

    __tablename__ = "outcomes"
    __table_args__ = (Index("ix_outcomes_type_created_at", "type", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    call_id: Mapped[int | None] = mapped_column(
        ForeignKey("calls.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), index=True
    )
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DoNotCall(Base):
    """The opt-out list: a number here is never dialed again, in any campaign."""

    __tablename__ = "do_not_call"

    e164: Mapped[str] = mapped_column(String(20), primary_key=True)
    reason: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Who did what: campaign state changes, imports, exports, key creation."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; ``prefix`` finds the row without the secret."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PacingBucket(Base):
    """A token bucket shared by every dialer process: the carrier's calls-per-second limit."""

    __tablename__ = "pacing_buckets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TranscriptTurn(Base):
    """One turn of a call's transcript: a bot prompt or what the borrower said (or pressed)."""

    __tablename__ = "transcript_turns"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)  # order within the call, from 0
    speaker: Mapped[str] = mapped_column(String(16))  # bot | borrower
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(String(128))  # the dialog state it belongs to
    confidence: Mapped[float | None] = mapped_column(Float)  # the recogniser's, borrower only
    dtmf: Mapped[bool] = mapped_column(Boolean, default=False)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)  # a prompt cut by barge-in
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- Results over HTTP: payments and promise follow-up, notifications (issue 5) ---------------


class Payment(Base):
    """A repayment the lender received, matched to promises by loan id."""

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_loan_id_paid_on", "loan_id", "paid_on"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    loan_id: Mapped[str] = mapped_column(String(128))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    paid_on: Mapped[date] = mapped_column(Date)
    # The lender's own id for the payment: sending it again is a no-op, not a second payment.
    reference: Mapped[str | None] = mapped_column(String(128), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # api | csv
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PromisePolicy(Base):
    """How a campaign follows up its promises to pay (no row: no follow-up, no grace)."""

    __tablename__ = "promise_policies"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    grace_days: Mapped[int] = mapped_column(Integer, default=0)
    follow_up_broken: Mapped[bool] = mapped_column(Boolean, default=True)
    follow_up_delay_hours: Mapped[int] = mapped_column(Integer, default=24)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PromiseCheck(Base):
    """A promise to pay, judged against the payments: kept, partly kept or broken."""

    __tablename__ = "promise_checks"

    outcome_id: Mapped[int] = mapped_column(
        ForeignKey("outcomes.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))
    paid_amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    follow_up_callback_id: Mapped[int | None] = mapped_column(
        ForeignKey("callbacks.id", ondelete="SET NULL")
    )


class NotificationEndpoint(Base):
    """A URL that receives signed JSON events; ``secret`` is the HMAC-SHA256 key."""

    __tablename__ = "notification_endpoints"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NotificationEvent(Base):
    """The outbox: an event to send, written in the transaction that caused it."""

    __tablename__ = "notification_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    # What caused it ("outcome:17", "promise:17:broken"): the same cause never makes two events.
    source_key: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[int | None] = mapped_column(BigIntPK, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NotificationDelivery(Base):
    """One event to one endpoint: retried with back-off until the endpoint answers 2xx."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        Index(
            "ix_notification_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # A contact's events go out in order: only its oldest pending one is sent.
        Index(
            "ix_notification_deliveries_order",
            "endpoint_id",
            "contact_key",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("notification_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("notification_endpoints.id", ondelete="CASCADE")
    )
    contact_key: Mapped[int] = mapped_column(BigIntPK)  # the contact's id, 0 for none
    status: Mapped[str] = mapped_column(String(16), default="pending")  # delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When it was made or last redelivered: retries are given up a while after this.
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxCursor(Base):
    """How far a scan of a source table (e.g. outcomes) has turned rows into events."""

    __tablename__ = "outbox_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigIntPK)


# Analysts' reads of calls (voicebot.db.results, voicebot.db.reports): a campaign's or a
# borrower's calls newest first, walked backwards from the end of the index and stopped at a
# page's LIMIT. On PostgreSQL the campaign's index also carries what the filters and the
# campaign report read, so neither visits the table for the rows it passes over.
Index(
    "ix_calls_campaign_id_id",
    Call.campaign_id,
    Call.id,
    postgresql_include=["created_at", "disposition", "contact_id", "conversed", "duration_seconds"],
)
Index("ix_calls_contact_id_id", Call.contact_id, Call.id)
# A campaign report (voicebot.db.reports) reads these alone, never the outcomes' rows: which
# borrowers the campaign's calls got a promise, complaint or opt-out from (the call's id tells
# whether it was placed in a range) ...
Index(
    "ix_outcomes_campaign_id_type_contact_id",
    Outcome.campaign_id,
    Outcome.type,
    Outcome.contact_id,
    postgresql_include=["call_id"],
)
# ... and what the promises were (a promise's data is a few short fields: amount, currency, date).
Index(
    "ix_outcomes_promises",
    Outcome.campaign_id,
    Outcome.call_id,
    postgresql_include=["data"],
    postgresql_where=text("type = 'promise'"),
    sqlite_where=text("type = 'promise'"),
)
