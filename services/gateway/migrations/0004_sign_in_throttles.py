"""Sign-in throttling beyond the account: per client address, and per user id nobody has.

Revision ID: gateway_0004_hardening
Revises: gateway_0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from shared.sqltypes import UtcDateTime

revision = "gateway_0004_hardening"
down_revision = "gateway_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_throttles",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_failure_at", UtcDateTime, nullable=False),
        sa.Column("next_attempt_at", UtcDateTime, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("sign_in_throttles")
