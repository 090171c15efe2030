"""A user's console language and time zone (both optional: Accept-Language and the center's zone otherwise),
and the center's own settings (its time zone, the wallboard's thresholds).

Expand only: two nullable columns, so replicas of the version before keep working during a rolling upgrade.

Revision ID: gateway_0004_console_locale
Revises: gateway_0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "gateway_0004_console_locale"
down_revision = "gateway_0004_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as table:
        table.add_column(sa.Column("language", sa.String(16), nullable=True))
        table.add_column(sa.Column("time_zone", sa.String(64), nullable=True))
    op.create_table(
        "center_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("center_settings")
    with op.batch_alter_table("users") as table:
        table.drop_column("time_zone")
        table.drop_column("language")
