"""The customer replica keeps the customer's language (customer events carry it).

Revision ID: callrouting_0008_language
Revises: callrouting_0007_staffing
Create Date: 2026-12-03
"""

from alembic import op

from shared import replicas

revision = "callrouting_0008_language"
down_revision = "callrouting_0007_staffing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    replicas.upgrade_customer_replicas_v3(op)


def downgrade() -> None:
    replicas.downgrade_customer_replicas_v3(op)
