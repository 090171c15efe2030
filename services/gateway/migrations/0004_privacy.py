"""Customer data protection: the audit log, and the erasure requests applied here.

Revision ID: gateway_0004_privacy
Revises: gateway_0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from shared.privacy import create_privacy_erasures, drop_privacy_erasures
from shared.sqltypes import UtcDateTime

revision = "gateway_0004_privacy"
down_revision = "gateway_0004_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("actor_id", sa.String(64)),
        sa.Column("actor_role", sa.String(16)),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(36)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_log_customer_at", "audit_log", ["customer_id", "at"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    create_privacy_erasures(op)


def downgrade() -> None:
    drop_privacy_erasures(op)
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_customer_at", table_name="audit_log")
    op.drop_table("audit_log")
