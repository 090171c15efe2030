"""The customer replica and the event backbone tables.

Revision ID: gateway_0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op

from shared import backbone, replicas

revision = "gateway_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    backbone.create_tables_v1(op)
    replicas.create_customer_replicas_v1(op)


def downgrade() -> None:
    op.drop_table("customer_replicas")
    backbone.drop_tables_v1(op)
