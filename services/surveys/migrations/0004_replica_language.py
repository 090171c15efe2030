"""The customer replica keeps the customer's language (customer events carry it).

Revision ID: surveys_0004_replica_language
Revises: surveys_0003
Create Date: 2026-12-03
"""

from alembic import op

from shared import replicas

revision = "surveys_0004_replica_language"
down_revision = "surveys_0004_mail"
branch_labels = None
depends_on = None


def upgrade() -> None:
    replicas.upgrade_customer_replicas_v3(op)


def downgrade() -> None:
    replicas.downgrade_customer_replicas_v3(op)
