"""A customer's calls, in and out, newest first: indexes for the gateway's customer view.

Revision ID: callrouting_0005
Revises: callrouting_0004
Create Date: 2026-11-24
"""

from alembic import op

revision = "callrouting_0005"
down_revision = "callrouting_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_call_attempts_customer_ended", "call_attempts", ["customer_id", "ended_at"])
    op.create_index("ix_calls_customer_received", "calls", ["customer_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_calls_customer_received", table_name="calls")
    op.drop_index("ix_call_attempts_customer_ended", table_name="call_attempts")
