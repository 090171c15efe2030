"""The customer replica keeps the customer's language (customer events carry it).

Revision ID: gateway_0005_replica_language
Revises: gateway_0004_console_locale
Create Date: 2026-12-03
"""

from alembic import op

from shared import replicas

revision = "gateway_0005_replica_language"
down_revision = "gateway_0004_console_locale"
branch_labels = None
depends_on = None


def upgrade() -> None:
    replicas.upgrade_customer_replicas_v3(op)


def downgrade() -> None:
    replicas.downgrade_customer_replicas_v3(op)
