"""The service desk: customer details and numbers, purchases, tickets with history and SLAs.

Revision ID: tickets_0003
Revises: tickets_0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "tickets_0003"
down_revision = "tickets_0002"
branch_labels = None
depends_on = None

UTC_TIME = sa.DateTime(timezone=True)

DEFAULT_SLA_POLICIES = [
    # priority, first response, resolution (minutes), on the business calendar (when one is set)
    {"priority": "urgent", "first_response_minutes": 60, "resolution_minutes": 4 * 60, "business_hours": False},
    {"priority": "high", "first_response_minutes": 4 * 60, "resolution_minutes": 24 * 60, "business_hours": True},
    {"priority": "normal", "first_response_minutes": 8 * 60, "resolution_minutes": 3 * 8 * 60, "business_hours": True},
    {"priority": "low", "first_response_minutes": 24 * 60, "resolution_minutes": 5 * 8 * 60, "business_hours": True},
]


def upgrade() -> None:
    op.add_column("customers", sa.Column("time_zone", sa.String(64)))
    op.add_column("customers", sa.Column("do_not_call", sa.Boolean(), server_default="0", nullable=False))
    op.add_column("customers", sa.Column("marketing_consent", sa.Boolean(), server_default="0", nullable=False))
    op.add_column("customers", sa.Column("segment", sa.String(1)))
    op.add_column("customers", sa.Column("merged_into_id", sa.String(36)))
    op.add_column("customers", sa.Column("updated_at", UTC_TIME))

    op.create_table(
        "customer_phones",
        sa.Column("customer_id", sa.String(36), sa.ForeignKey("customers.id"), primary_key=True),
        sa.Column("phone", sa.String(16), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_index("ix_customer_phones_phone", "customer_phones", ["phone"])
    # Numbers stored before this revision become the customers' primary numbers.
    op.execute(
        "INSERT INTO customer_phones (customer_id, phone, position) SELECT id, phone, 0 FROM customers"
        " WHERE phone IS NOT NULL"
    )

    op.create_table(
        "purchases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(36), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("product", sa.String(200), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("purchased_at", UTC_TIME, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("order_ref", sa.String(128), nullable=False),
        sa.Column("recorded_at", UTC_TIME, nullable=False),
        sa.UniqueConstraint("source", "order_ref", name="uq_purchases_source_order_ref"),
    )
    op.create_index("ix_purchases_customer_id", "purchases", ["customer_id"])
    op.create_index("ix_purchases_purchased_at", "purchases", ["purchased_at"])

    op.create_table(
        "tickets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("number", sa.Integer(), nullable=False, unique=True),
        sa.Column("customer_id", sa.String(36), sa.ForeignKey("customers.id")),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee_id", sa.String(64)),
        sa.Column("group_name", sa.String(64)),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("call_id", sa.String(64)),
        sa.Column("survey_response_id", sa.String(36), unique=True),
        sa.Column("created_by", sa.String(64)),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("first_responded_at", UTC_TIME),
        sa.Column("resolved_at", UTC_TIME),
        sa.Column("closed_at", UTC_TIME),
        sa.Column("first_response_due_at", UTC_TIME),
        sa.Column("resolution_due_at", UTC_TIME),
        sa.Column("pending_since", UTC_TIME),
        sa.Column("paused_seconds", sa.Float(), nullable=False),
        sa.Column("first_response_breached_at", UTC_TIME),
        sa.Column("resolution_breached_at", UTC_TIME),
        sa.Column("breached", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("sla_check_at", UTC_TIME),
    )
    op.create_index("ix_tickets_call_id", "tickets", ["call_id"])
    op.create_index("ix_tickets_sla_check_at", "tickets", ["sla_check_at"])
    op.create_index("ix_tickets_created_at", "tickets", ["created_at", "id"])
    op.create_index("ix_tickets_status_created_at", "tickets", ["status", "created_at", "id"])
    op.create_index("ix_tickets_assignee_status_created_at", "tickets", ["assignee_id", "status", "created_at", "id"])
    op.create_index("ix_tickets_customer_created_at", "tickets", ["customer_id", "created_at", "id"])
    op.create_index("ix_tickets_category_created_at", "tickets", ["category", "created_at", "id"])
    op.create_index("ix_tickets_priority_status_created_at", "tickets", ["priority", "status", "created_at", "id"])
    op.create_index("ix_tickets_resolved_at", "tickets", ["resolved_at"])

    op.create_table(
        "ticket_comments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("ticket_id", sa.String(36), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("author_id", sa.String(64)),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
    )
    op.create_index("ix_ticket_comments_ticket_id", "ticket_comments", ["ticket_id"])

    op.create_table(
        "ticket_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.String(36), sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("actor_id", sa.String(64)),
        sa.Column("changed_at", UTC_TIME, nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("old_value", sa.Text()),
        sa.Column("new_value", sa.Text()),
    )
    op.create_index("ix_ticket_history_ticket_id", "ticket_history", ["ticket_id"])

    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Integer(), nullable=False),
    )
    op.bulk_insert(counters, [{"name": "ticket_number", "value": 0}])

    policies = op.create_table(
        "sla_policies",
        sa.Column("priority", sa.String(16), primary_key=True),
        sa.Column("first_response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolution_minutes", sa.Integer(), nullable=False),
        sa.Column("business_hours", sa.Boolean(), nullable=False),
    )
    op.bulk_insert(policies, DEFAULT_SLA_POLICIES)

    op.create_table(
        "business_calendars",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("hours", sa.JSON(), nullable=False),
        sa.Column("holidays", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    for table in ("business_calendars", "sla_policies", "counters", "ticket_history", "ticket_comments", "tickets"):
        op.drop_table(table)
    op.drop_table("purchases")
    op.drop_table("customer_phones")
    with op.batch_alter_table("customers") as batch:
        for column in ("updated_at", "merged_into_id", "segment", "marketing_consent", "do_not_call", "time_zone"):
            batch.drop_column(column)
