"""The customer's language, and the folded name that finds "Inès" by "Ines".

Expand only (two nullable columns and an index, filled for the customers already there), so the
version before keeps running beside this one during a rolling upgrade.

Revision ID: tickets_0004_customer_language
Revises: tickets_0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from services.tickets.domain import search_form
from shared.phones import language_of

revision = "tickets_0004_customer_language"
down_revision = "tickets_0005_webhook_signatures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as table:
        table.add_column(sa.Column("language", sa.String(16), nullable=True))
        table.add_column(sa.Column("search_name", sa.String(200), nullable=True))
    op.create_index("ix_customers_search_name", "customers", ["search_name"])
    customers = sa.table(
        "customers",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("phone", sa.String),
        sa.column("language", sa.String),
        sa.column("search_name", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(customers.c.id, customers.c.name, customers.c.phone)).all()
    for customer_id, name, phone in rows:
        connection.execute(
            customers.update()
            .where(customers.c.id == customer_id)
            .values(search_name=search_form(name or ""), language=language_of(phone))
        )


def downgrade() -> None:
    op.drop_index("ix_customers_search_name", table_name="customers")
    with op.batch_alter_table("customers") as table:
        table.drop_column("search_name")
        table.drop_column("language")
