"""Customer data protection: erased numbers on the do-not-call list as hashes; applied erasures.

Revision ID: callrouting_0006_privacy
Revises: callrouting_0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from shared.privacy import create_privacy_erasures, drop_privacy_erasures

revision = "callrouting_0006_privacy"
down_revision = "callrouting_0006_hardening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("do_not_call") as batch:
        batch.add_column(sa.Column("phone_hash", sa.String(64), nullable=True))
    op.create_index("ix_do_not_call_phone_hash", "do_not_call", ["phone_hash"])
    create_privacy_erasures(op)


def downgrade() -> None:
    drop_privacy_erasures(op)
    op.drop_index("ix_do_not_call_phone_hash", table_name="do_not_call")
    with op.batch_alter_table("do_not_call") as batch:
        batch.drop_column("phone_hash")
