"""indexes a campaign report reads its outcomes from alone: borrowers' outcomes, promises

They replace ix_outcomes_campaign_id_type_call_id, whose leading columns the first one keeps.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 19:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PROMISE = sa.text("type = 'promise'")


def upgrade() -> None:
    op.drop_index("ix_outcomes_campaign_id_type_call_id", table_name="outcomes")
    op.create_index(
        "ix_outcomes_campaign_id_type_contact_id",
        "outcomes",
        ["campaign_id", "type", "contact_id"],
        postgresql_include=["call_id"],
    )
    op.create_index(
        "ix_outcomes_promises",
        "outcomes",
        ["campaign_id", "call_id"],
        postgresql_include=["data"],
        postgresql_where=_PROMISE,
        sqlite_where=_PROMISE,
    )


def downgrade() -> None:
    op.drop_index("ix_outcomes_promises", table_name="outcomes")
    op.drop_index("ix_outcomes_campaign_id_type_contact_id", table_name="outcomes")
    op.create_index(
        "ix_outcomes_campaign_id_type_call_id", "outcomes", ["campaign_id", "type", "call_id"]
    )
