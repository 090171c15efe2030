"""Idempotency keys for POSTs.

Revision ID: tickets_0002
Revises: tickets_0001
Create Date: 2026-11-24
"""

from alembic import op

from shared import backbone

revision = "tickets_0002"
down_revision = "tickets_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    backbone.create_tables_v2(op)


def downgrade() -> None:
    backbone.drop_tables_v2(op)
