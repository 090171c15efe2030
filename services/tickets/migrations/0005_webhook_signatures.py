"""The inbound-mail webhook's signatures seen within its window, so a replay is refused (shared.webhooks).

Revision ID: tickets_0005_webhook_signatures
Revises: tickets_0004_mail
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "tickets_0005_webhook_signatures"
down_revision = "tickets_0004_mail"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_signatures",
        sa.Column("signature", sa.String(64), primary_key=True),
        sa.Column("signed_ts", sa.Float, nullable=False),
    )
    op.create_index("ix_webhook_signatures_signed_ts", "webhook_signatures", ["signed_ts"])


def downgrade() -> None:
    op.drop_index("ix_webhook_signatures_signed_ts", table_name="webhook_signatures")
    op.drop_table("webhook_signatures")
