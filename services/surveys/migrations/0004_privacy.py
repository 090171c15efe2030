"""Customer data protection: the erasure requests applied here.

Revision ID: surveys_0004_privacy
Revises: surveys_0003
Create Date: 2026-12-03
"""

from alembic import op

from shared.privacy import create_privacy_erasures, drop_privacy_erasures

revision = "surveys_0004_privacy"
down_revision = "surveys_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_privacy_erasures(op)


def downgrade() -> None:
    drop_privacy_erasures(op)
