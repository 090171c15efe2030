"""Inbound calls: queues, the agents' routing data, call records and their status callbacks.

Revision ID: callrouting_0004
Revises: callrouting_0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from shared.sqltypes import UtcDateTime

revision = "callrouting_0004"
down_revision = "callrouting_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_callbacks",
        sa.Column("callback_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=True),
        sa.Column("record_call_id", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=True),
        sa.Column("timeout", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("callback_id"),
        sa.UniqueConstraint("call_id", "sequence", name="uq_call_callbacks_call_sequence"),
    )
    with op.batch_alter_table("call_callbacks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_callbacks_received_at"), ["received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_callbacks_record_call_id"), ["record_call_id"], unique=False)

    op.create_table(
        "calls",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("from_number", sa.String(length=32), nullable=True),
        sa.Column("to_number", sa.String(length=32), nullable=True),
        sa.Column("customer_id", sa.String(length=36), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("offered_to", sa.JSON(), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("enqueued_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("wrap_up_started_at", UtcDateTime(), nullable=True),
        sa.Column("wrapped_up_at", UtcDateTime(), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("wait_seconds", sa.Float(), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=True),
        sa.Column("wrap_up_seconds", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("ticket_id", sa.String(length=36), nullable=True),
        sa.Column("last_sequence", sa.Integer(), nullable=True),
        sa.Column("offer_round", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("call_id"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calls_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index("ix_calls_customer_answered", ["customer_id", "answered_at"], unique=False)
        batch_op.create_index("ix_calls_day_queue", ["day", "queue"], unique=False)
        batch_op.create_index("ix_calls_state_queue_received", ["state", "queue", "received_at"], unique=False)

    op.create_table(
        "queues",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("required_skills", sa.JSON(), nullable=False),
        sa.Column("service_level_seconds", sa.Integer(), nullable=False),
        sa.Column("short_abandon_seconds", sa.Integer(), nullable=False),
        sa.Column("wrap_up_seconds", sa.Integer(), nullable=False),
        sa.Column("max_wait_seconds", sa.Integer(), nullable=False),
        sa.Column("last_agent_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "agent_routing",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("endpoint_kind", sa.String(length=8), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("missed_offers", sa.Integer(), nullable=False),
        sa.Column("idle_since", UtcDateTime(), nullable=True),
        sa.Column("current_call_id", sa.String(length=64), nullable=True),
        sa.Column("wrap_up_until", UtcDateTime(), nullable=True),
        sa.Column("stats_day", sa.String(length=10), nullable=True),
        sa.Column("calls_today", sa.Integer(), nullable=False),
        sa.Column("talk_seconds_today", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.agent_id"],
        ),
        sa.PrimaryKeyConstraint("agent_id"),
    )


def downgrade() -> None:
    op.drop_table("agent_routing")
    op.drop_table("queues")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_state_queue_received")
        batch_op.drop_index("ix_calls_day_queue")
        batch_op.drop_index("ix_calls_customer_answered")
        batch_op.drop_index(batch_op.f("ix_calls_agent_id"))

    op.drop_table("calls")
    with op.batch_alter_table("call_callbacks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_callbacks_record_call_id"))
        batch_op.drop_index(batch_op.f("ix_call_callbacks_received_at"))

    op.drop_table("call_callbacks")
