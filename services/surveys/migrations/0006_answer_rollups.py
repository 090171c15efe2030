"""Rollups per template, question and kind as answered (issue 19): ``survey_answer_rollups``.

Expand step of a rolling upgrade. The new table is created and filled from the stored complete
responses, each answer under the kind its question has in the template version the response
answered. ``survey_rollups`` (keyed by question key only) stays, and the new release keeps adding to
it, so replicas of the previous release still read right figures while the upgrade rolls; a later
contract migration drops it. Answers stored by the previous release after this backfill reach only
``survey_rollups``: once every replica runs the new release, run
``python -m services surveys rebuild-rollups`` (docs/surveys.md, "Figures per template").

Revision ID: surveys_0006_answer_rollups
Revises: surveys_0005_template_languages
Create Date: 2026-12-04
"""

from datetime import date, timedelta

import sqlalchemy as sa
from alembic import op

revision = "surveys_0006_answer_rollups"
down_revision = "surveys_0005_template_languages"
branch_labels = None
depends_on = None

SUMS = ("n", "total", "squares", *(f"c{score}" for score in range(1, 11)))
KEY = ("span", "dimension", "day", "value", "template_id", "question", "kind")

templates = sa.table(
    "survey_templates",
    sa.column("template_id", sa.String),
    sa.column("version", sa.Integer),
    sa.column("questions", sa.JSON),
)
responses = sa.table(
    "survey_responses",
    *(
        sa.column(name, sa.String)
        for name in ("template_id", "status", "day", "product", "agent_id", "campaign_id", "channel")
    ),
    sa.column("template_version", sa.Integer),
    sa.column("answers", sa.JSON),
)


def upgrade() -> None:
    table = op.create_table(
        "survey_answer_rollups",
        sa.Column("span", sa.String(length=4), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("template_id", sa.String(length=36), nullable=False),
        sa.Column("question", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in SUMS),
        sa.PrimaryKeyConstraint(*KEY),
    )
    connection = op.get_bind()
    kinds = {
        (template_id, version): {question["key"]: question.get("kind", "rating") for question in questions}
        for template_id, version, questions in connection.execute(
            sa.select(templates.c.template_id, templates.c.version, templates.c.questions)
        )
    }
    # Frozen here (the migration must not change when services/surveys/domain.py does): an answer
    # counts in the "all" bucket and in its product, agent, campaign and channel, on its day and week.
    totals: dict[tuple, list[int]] = {}
    selected = sa.select(responses).where(responses.c.status == "complete", responses.c.day.is_not(None))
    for row in connection.execute(selected).mappings():
        day = row["day"]
        monday = (date.fromisoformat(day) - timedelta(days=date.fromisoformat(day).weekday())).isoformat()
        of_version = kinds.get((row["template_id"], row["template_version"]), {})
        buckets = [("all", ""), ("product", row["product"]), ("agent", row["agent_id"])]
        buckets += [("campaign", row["campaign_id"]), ("channel", row["channel"])]
        for question, score in (row["answers"] or {}).items():
            score = int(score)
            kind = of_version.get(question, "rating")
            for dimension, value in buckets:
                for span, start in (("day", day), ("week", monday)):
                    key = (span, dimension, start, str(value or ""), row["template_id"], question, kind)
                    sums = totals.setdefault(key, [0] * 13)
                    sums[0] += 1
                    sums[1] += score
                    sums[2] += score * score
                    sums[2 + score] += 1
    rows = [dict(zip(KEY + SUMS, (*key, *sums), strict=True)) for key, sums in totals.items()]
    for first in range(0, len(rows), 5000):
        op.bulk_insert(table, rows[first : first + 5000])


def downgrade() -> None:
    op.drop_table("survey_answer_rollups")
