"""Agents registry and the outbound follow-up call lists.

Revision ID: callrouting_0003
Revises: callrouting_0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from shared.sqltypes import UtcDateTime

revision = "callrouting_0003"
down_revision = "callrouting_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("agent_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_changed_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("delay_days", sa.Integer(), nullable=False),
        sa.Column("script", sa.Text(), nullable=False),
        sa.Column("talking_point", sa.Text(), nullable=False),
        sa.Column("retry_policy", sa.JSON(), nullable=False),
        sa.Column("calling_window", sa.JSON(), nullable=False),
        sa.Column("contact_frequency_days", sa.Integer(), nullable=False),
        sa.Column("required_skill", sa.String(64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_campaigns_purpose", "campaigns", ["purpose"])
    op.create_table(
        "call_entries",
        sa.Column("entry_id", sa.String(36), primary_key=True),
        sa.Column("campaign_id", sa.String(36), sa.ForeignKey("campaigns.campaign_id"), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("purchase_id", sa.String(36), nullable=True),
        sa.Column("followup_request_id", sa.String(36), nullable=True),
        sa.Column("schedule_key", sa.String(80), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("shuffle_key", sa.Float(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("leased_by", sa.String(64), nullable=True),
        sa.Column("leased_at", UtcDateTime(), nullable=True),
        sa.Column("lease_expires_at", UtcDateTime(), nullable=True),
        sa.Column("last_outcome", sa.String(32), nullable=True),
        sa.Column("offer_accepted", sa.Boolean(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.UniqueConstraint("campaign_id", "schedule_key", name="uq_call_entries_campaign_schedule_key"),
        sa.UniqueConstraint("followup_request_id"),
    )
    op.create_index("ix_call_entries_customer_id", "call_entries", ["customer_id"])
    op.create_index(
        "ix_call_entries_leased_by",
        "call_entries",
        ["leased_by"],
        sqlite_where=sa.text("leased_by IS NOT NULL"),
        postgresql_where=sa.text("leased_by IS NOT NULL"),
    )
    op.create_index(
        "ix_call_entries_pick",
        "call_entries",
        ["state", "shuffle_key", "due_at", "campaign_id", "time_zone", "entry_id"],
    )
    op.create_index("ix_call_entries_state_lease", "call_entries", ["state", "lease_expires_at"])
    op.create_index(
        "ix_call_entries_campaign_state_due", "call_entries", ["campaign_id", "state", "due_at", "time_zone"]
    )
    op.create_table(
        "call_attempts",
        sa.Column("attempt_id", sa.String(36), primary_key=True),
        sa.Column("entry_id", sa.String(36), sa.ForeignKey("call_entries.entry_id"), nullable=False),
        sa.Column("campaign_id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("offer_accepted", sa.Boolean(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("callback_at", UtcDateTime(), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_call_attempts_entry_id", "call_attempts", ["entry_id"])
    op.create_index("ix_call_attempts_campaign_ended", "call_attempts", ["campaign_id", "ended_at"])
    op.create_table(
        "do_not_call",
        sa.Column("dnc_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(36), nullable=True),
        sa.Column("phone", sa.String(16), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_do_not_call_customer_id", "do_not_call", ["customer_id"])
    op.create_index("ix_do_not_call_phone", "do_not_call", ["phone"])
    op.create_table(
        "customer_contacts",
        sa.Column("contact_id", sa.String(80), primary_key=True),
        sa.Column("customer_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("contacted_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_customer_contacts_customer_at", "customer_contacts", ["customer_id", "contacted_at"])
    op.create_table("call_time_zones", sa.Column("time_zone", sa.String(64), primary_key=True))


def downgrade() -> None:
    op.drop_table("call_time_zones")
    op.drop_index("ix_customer_contacts_customer_at", table_name="customer_contacts")
    op.drop_table("customer_contacts")
    op.drop_index("ix_do_not_call_phone", table_name="do_not_call")
    op.drop_index("ix_do_not_call_customer_id", table_name="do_not_call")
    op.drop_table("do_not_call")
    op.drop_index("ix_call_attempts_campaign_ended", table_name="call_attempts")
    op.drop_index("ix_call_attempts_entry_id", table_name="call_attempts")
    op.drop_table("call_attempts")
    for name in (
        "ix_call_entries_campaign_state_due",
        "ix_call_entries_state_lease",
        "ix_call_entries_pick",
        "ix_call_entries_leased_by",
        "ix_call_entries_customer_id",
    ):
        op.drop_index(name, table_name="call_entries")
    op.drop_table("call_entries")
    op.drop_index("ix_campaigns_purpose", table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_table("agents")
