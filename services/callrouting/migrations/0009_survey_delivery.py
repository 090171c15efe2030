"""A call list says how its survey reaches the customer (on the call, or its link by e-mail).

Expand only: the column has a server default, so the release before this one (which does not
know it) keeps inserting campaigns during a rolling upgrade, and they are on-call campaigns.

Revision ID: callrouting_0009_survey_delivery
Revises: callrouting_0008_language
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "callrouting_0009_survey_delivery"
down_revision = "callrouting_0008_language"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("survey_delivery", sa.String(16), nullable=False, server_default="on_call"))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("survey_delivery")
