"""The customer directory and the event backbone tables.

Revision ID: tickets_0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from shared import backbone

revision = "tickets_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    backbone.create_tables_v1(op)
    op.create_table(
        "customers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(16)),
        sa.Column("email", sa.String(254)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_customers_phone", "customers", ["phone"])
    op.create_index("ix_customers_email", "customers", ["email"])


def downgrade() -> None:
    op.drop_table("customers")
    backbone.drop_tables_v1(op)
