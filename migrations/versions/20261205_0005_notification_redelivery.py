"""notification deliveries: when each was last queued, so a redelivered one gets a fresh
window of retries

A delivery is given up once it has been failing for ``VOICEBOT_NOTIFICATION_GIVE_UP_HOURS``.
That window used to run from the event's creation; it now runs from ``queued_at``: when the
delivery was made, or when an admin last asked for it to be delivered again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 01:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import voicebot.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at() -> voicebot.db.types.UTCDateTime:
    return voicebot.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.add_column(sa.Column("queued_at", _at(), nullable=True))
    op.execute("UPDATE notification_deliveries SET queued_at = created_at")
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.alter_column("queued_at", existing_type=_at(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.drop_column("queued_at")
