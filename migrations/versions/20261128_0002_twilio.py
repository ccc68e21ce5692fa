"""twilio carrier: per-campaign call settings, call recordings, carrier alarms

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 15:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import voicebot.db.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _campaign_columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column(
            "caller_id_mode",
            sa.String(length=16),
            server_default=sa.text("'rotate'"),
            nullable=False,
        ),
        sa.Column(
            "ring_timeout_seconds", sa.Integer(), server_default=sa.text("30"), nullable=False
        ),
        sa.Column(
            "time_limit_seconds", sa.Integer(), server_default=sa.text("1800"), nullable=False
        ),
        sa.Column(
            "machine_detection",
            sa.String(length=24),
            server_default=sa.text("'off'"),
            nullable=False,
        ),
        sa.Column(
            "machine_action",
            sa.String(length=16),
            server_default=sa.text("'hang_up'"),
            nullable=False,
        ),
        sa.Column("record_calls", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def _call_columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column("recording_sid", sa.String(length=64), nullable=True),
        sa.Column("recording_url", sa.Text(), nullable=True),
        sa.Column("recording_duration_seconds", sa.Integer(), nullable=True),
    )


def upgrade() -> None:
    # batch_alter_table: SQLite cannot add NOT NULL columns with ALTER TABLE in every case, and
    # batch mode is a plain ALTER on PostgreSQL.
    with op.batch_alter_table("campaigns") as batch:
        for column in _campaign_columns():
            batch.add_column(column)
    with op.batch_alter_table("calls") as batch:
        for column in _call_columns():
            batch.add_column(column)
    op.create_table(
        "carrier_alarms",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", voicebot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", voicebot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_carrier_alarms")),
    )


def downgrade() -> None:
    op.drop_table("carrier_alarms")
    with op.batch_alter_table("calls") as batch:
        for column in reversed(_call_columns()):
            batch.drop_column(column.name)
    with op.batch_alter_table("campaigns") as batch:
        for column in reversed(_campaign_columns()):
            batch.drop_column(column.name)
