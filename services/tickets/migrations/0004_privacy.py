"""Customer data protection: erasure requests, which of them were applied here, erased customers.

Revision ID: tickets_0004_privacy
Revises: tickets_0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from shared.privacy import create_privacy_erasures, drop_privacy_erasures
from shared.sqltypes import UtcDateTime

revision = "tickets_0004_privacy"
down_revision = "tickets_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("erased_at", UtcDateTime(), nullable=True))
    op.create_table(
        "privacy_requests",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(64)),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_privacy_requests_customer_id", "privacy_requests", ["customer_id"])
    op.create_index("ix_privacy_requests_requested_at", "privacy_requests", ["requested_at"])
    create_privacy_erasures(op)


def downgrade() -> None:
    drop_privacy_erasures(op)
    op.drop_index("ix_privacy_requests_requested_at", table_name="privacy_requests")
    op.drop_index("ix_privacy_requests_customer_id", table_name="privacy_requests")
    op.drop_table("privacy_requests")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("erased_at")
