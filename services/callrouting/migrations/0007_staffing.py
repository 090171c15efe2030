"""Staffing: the agents' state history.

Revision ID: callrouting_0007_staffing
Revises: callrouting_0006_privacy
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from shared.sqltypes import UtcDateTime

revision = "callrouting_0007_staffing"
down_revision = "callrouting_0006_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_state_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("old_state", sa.String(16), nullable=False),
        sa.Column("new_state", sa.String(16), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.String(32)),
    )
    op.create_index("ix_agent_state_history_at", "agent_state_history", ["at"])
    op.create_index("ix_agent_state_history_agent_at", "agent_state_history", ["agent_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_agent_state_history_agent_at", table_name="agent_state_history")
    op.drop_index("ix_agent_state_history_at", table_name="agent_state_history")
    op.drop_table("agent_state_history")
