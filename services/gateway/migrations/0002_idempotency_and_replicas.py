"""Idempotency keys for POSTs; the customer replica's consent, time zone, segment, merges and phones.

Revision ID: gateway_0002
Revises: gateway_0001
Create Date: 2026-11-24
"""

from alembic import op

from shared import backbone, replicas

revision = "gateway_0002"
down_revision = "gateway_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    backbone.create_tables_v2(op)
    replicas.upgrade_customer_replicas_v2(op)


def downgrade() -> None:
    replicas.downgrade_customer_replicas_v2(op)
    backbone.drop_tables_v2(op)
