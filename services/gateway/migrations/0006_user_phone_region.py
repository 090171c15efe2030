"""A user's own country for phone numbers typed without a country code (optional: the center's otherwise).

Expand only: one nullable column, so replicas of the version before keep working during a rolling upgrade.

Revision ID: gateway_0006_user_phone_region
Revises: gateway_0005_replica_language
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0006_user_phone_region"
down_revision = "gateway_0005_replica_language"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as table:
        table.add_column(sa.Column("phone_region", sa.String(2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as table:
        table.drop_column("phone_region")
