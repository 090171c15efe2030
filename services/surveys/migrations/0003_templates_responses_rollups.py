"""Templates (with the brief's five questions as the default), responses, rollups, contacts,
purchases, web links and re-survey requests.

Revision ID: surveys_0003
Revises: surveys_0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "surveys_0003"
down_revision = "surveys_0002"
branch_labels = None
depends_on = None


# The default template as it was first seeded (frozen here; later versions are data).
DEFAULT_TEMPLATE_ID = "6f1c3a52-3d0e-5b8a-9c41-2f6d7e8a9b10"
DEFAULT_QUESTIONS = [
    {
        "key": "product",
        "kind": "rating",
        "required": True,
        "texts": {
            "en": "How well did the product meet your expectations?",
            "de": "Wie gut hat das Produkt Ihre Erwartungen erfüllt?",
        },
    },
    {
        "key": "service",
        "kind": "rating",
        "required": True,
        "texts": {
            "en": "How well did our service meet your expectations?",
            "de": "Wie gut hat unser Service Ihre Erwartungen erfüllt?",
        },
    },
    {
        "key": "purchase",
        "kind": "rating",
        "required": True,
        "texts": {"en": "How was the purchase experience?", "de": "Wie war Ihr Einkaufserlebnis?"},
    },
    {
        "key": "recommend_product",
        "kind": "recommend",
        "required": True,
        "texts": {
            "en": "Would you recommend the product to your friends?",
            "de": "Würden Sie das Produkt Ihren Freunden empfehlen?",
        },
    },
    {
        "key": "recommend_store",
        "kind": "recommend",
        "required": True,
        "texts": {
            "en": "Would you recommend our store as a whole?",
            "de": "Würden Sie unser Geschäft insgesamt weiterempfehlen?",
        },
    },
]


def upgrade() -> None:
    op.create_table(
        "survey_contacts",
        sa.Column("entry_id", sa.String(length=36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("campaign_id", sa.String(length=36), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("purchase_id", sa.String(length=36), nullable=True),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", "attempt"),
    )
    op.create_table(
        "survey_counts",
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("measure", sa.String(length=24), nullable=False),
        sa.Column("week", sa.String(length=10), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dimension", "day", "value", "template_id", "measure"),
    )
    op.create_table(
        "survey_links",
        sa.Column("link_id", sa.String(length=36), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.Column("entry_id", sa.String(length=36), nullable=True),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.Column("purchase_id", sa.String(length=36), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("link_id"),
    )
    op.create_table(
        "survey_purchases",
        sa.Column("purchase_id", sa.String(length=36), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=False),
        sa.Column("purchased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("purchase_id"),
    )
    op.create_table(
        "survey_responses",
        sa.Column("response_id", sa.String(length=36), nullable=False),
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=True),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.Column("entry_id", sa.String(length=36), nullable=True),
        sa.Column("campaign_id", sa.String(length=36), nullable=True),
        sa.Column("purchase_id", sa.String(length=36), nullable=True),
        sa.Column("product", sa.String(length=200), nullable=True),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("day", sa.String(length=10), nullable=True),
        sa.PrimaryKeyConstraint("response_id"),
        sa.UniqueConstraint("call_id"),
        sa.UniqueConstraint("entry_id"),
    )
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.create_index("ix_survey_responses_customer_started", ["customer_id", "started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_survey_responses_purchase_id"), ["purchase_id"], unique=False)

    op.create_table(
        "survey_resurveys",
        sa.Column("response_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("ticket_id", sa.String(length=36), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("response_id"),
        sa.UniqueConstraint("request_id"),
    )
    op.create_table(
        "survey_rollups",
        sa.Column("span", sa.String(length=4), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("question", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("squares", sa.Integer(), nullable=False),
        sa.Column("c1", sa.Integer(), nullable=False),
        sa.Column("c2", sa.Integer(), nullable=False),
        sa.Column("c3", sa.Integer(), nullable=False),
        sa.Column("c4", sa.Integer(), nullable=False),
        sa.Column("c5", sa.Integer(), nullable=False),
        sa.Column("c6", sa.Integer(), nullable=False),
        sa.Column("c7", sa.Integer(), nullable=False),
        sa.Column("c8", sa.Integer(), nullable=False),
        sa.Column("c9", sa.Integer(), nullable=False),
        sa.Column("c10", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("span", "dimension", "day", "value", "template_id", "question"),
    )
    templates = op.create_table(
        "survey_templates",
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("questions", sa.JSON(), nullable=False),
        sa.Column("comment_enabled", sa.Boolean(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("template_id", "version"),
    )
    op.bulk_insert(
        templates,
        [
            {
                "template_id": DEFAULT_TEMPLATE_ID,
                "version": 1,
                "name": "Follow-up survey",
                "questions": DEFAULT_QUESTIONS,
                "comment_enabled": True,
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("survey_templates")
    op.drop_table("survey_rollups")
    op.drop_table("survey_resurveys")
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_responses_purchase_id"))
        batch_op.drop_index("ix_survey_responses_customer_started")

    op.drop_table("survey_responses")
    op.drop_table("survey_purchases")
    op.drop_table("survey_links")
    op.drop_table("survey_counts")
    op.drop_table("survey_contacts")
