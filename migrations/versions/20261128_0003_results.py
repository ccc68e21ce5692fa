"""results over HTTP: payments and promise checks, notification outbox and deliveries, and
indexes for analysts' reads of calls

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 15:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import voicebot.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_PENDING = sa.text("status = 'pending'")


def _at() -> voicebot.db.types.UTCDateTime:
    return voicebot.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_index(
        "ix_calls_campaign_id_id",
        "calls",
        ["campaign_id", "id"],
        postgresql_include=[
            "created_at",
            "disposition",
            "contact_id",
            "conversed",
            "duration_seconds",
        ],
    )
    op.create_index("ix_calls_contact_id_id", "calls", ["contact_id", "id"])
    op.create_index(
        "ix_outcomes_campaign_id_type_call_id", "outcomes", ["campaign_id", "type", "call_id"]
    )
    op.create_table(
        "notification_endpoints",
        sa.Column("id", _ID, nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("event_types", _JSON, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _at(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_endpoints")),
    )
    op.create_table(
        "notification_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("source_key", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("contact_id", _ID, nullable=True),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("created_at", _at(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_events")),
        sa.UniqueConstraint("source_key", name=op.f("uq_notification_events_source_key")),
    )
    op.create_table(
        "outbox_cursors",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("last_id", _ID, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_outbox_cursors")),
    )
    op.create_table(
        "payments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("loan_id", sa.String(length=128), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", _at(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("reference", name=op.f("uq_payments_reference")),
    )
    op.create_index("ix_payments_loan_id_paid_on", "payments", ["loan_id", "paid_on"])
    op.create_table(
        "notification_deliveries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("event_id", _ID, nullable=False),
        sa.Column("endpoint_id", _ID, nullable=False),
        sa.Column("contact_key", _ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _at(), nullable=False),
        sa.Column("lease_expires_at", _at(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("created_at", _at(), nullable=False),
        sa.Column("delivered_at", _at(), nullable=True),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["notification_endpoints.id"],
            name=op.f("fk_notification_deliveries_endpoint_id_notification_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["notification_events.id"],
            name=op.f("fk_notification_deliveries_event_id_notification_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
        sa.UniqueConstraint(
            "event_id",
            "endpoint_id",
            name=op.f("uq_notification_deliveries_event_id_endpoint_id"),
        ),
    )
    op.create_index(
        "ix_notification_deliveries_due",
        "notification_deliveries",
        ["next_attempt_at"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.create_index(
        "ix_notification_deliveries_order",
        "notification_deliveries",
        ["endpoint_id", "contact_key", "id"],
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.create_table(
        "promise_policies",
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("grace_days", sa.Integer(), nullable=False),
        sa.Column("follow_up_broken", sa.Boolean(), nullable=False),
        sa.Column("follow_up_delay_hours", sa.Integer(), nullable=False),
        sa.Column("updated_at", _at(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_promise_policies_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_promise_policies")),
    )
    op.create_table(
        "promise_checks",
        sa.Column("outcome_id", _ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("paid_amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("checked_at", _at(), nullable=False),
        sa.Column("follow_up_callback_id", _ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["follow_up_callback_id"],
            ["callbacks.id"],
            name=op.f("fk_promise_checks_follow_up_callback_id_callbacks"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["outcome_id"],
            ["outcomes.id"],
            name=op.f("fk_promise_checks_outcome_id_outcomes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("outcome_id", name=op.f("pk_promise_checks")),
    )


def downgrade() -> None:
    op.drop_table("promise_checks")
    op.drop_table("promise_policies")
    op.drop_index("ix_notification_deliveries_order", table_name="notification_deliveries")
    op.drop_index("ix_notification_deliveries_due", table_name="notification_deliveries")
    op.drop_table("notification_deliveries")
    op.drop_index("ix_payments_loan_id_paid_on", table_name="payments")
    op.drop_table("payments")
    op.drop_table("outbox_cursors")
    op.drop_table("notification_events")
    op.drop_table("notification_endpoints")
    op.drop_index("ix_outcomes_campaign_id_type_call_id", table_name="outcomes")
    op.drop_index("ix_calls_contact_id_id", table_name="calls")
    op.drop_index("ix_calls_campaign_id_id", table_name="calls")
