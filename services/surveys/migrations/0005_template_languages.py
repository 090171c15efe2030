"""The default template's five questions in French, Tagalog and Chinese (simplified, traditional) too.

Only texts are added to the stored versions of the default template (English and German stay as
they were; no question, kind or scale changes), so every response keeps meaning what it meant.

Revision ID: surveys_0005_template_languages
Revises: surveys_0004_replica_language
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "surveys_0005_template_languages"
down_revision = "surveys_0004_replica_language"
branch_labels = None
depends_on = None

DEFAULT_TEMPLATE_ID = "6f1c3a52-3d0e-5b8a-9c41-2f6d7e8a9b10"
ADDED = ("fr", "tl", "zh-Hans", "zh-Hant")
# Frozen here (the migration must not change when services/surveys/domain.py does).
TEXTS = {
    "product": {
        "fr": "Dans quelle mesure le produit a-t-il répondu à vos attentes ?",
        "tl": "Gaano natugunan ng produkto ang inyong inaasahan?",
        "zh-Hans": "产品在多大程度上符合您的期望？",
        "zh-Hant": "產品在多大程度上符合您的期望？",
    },
    "service": {
        "fr": "Dans quelle mesure notre service a-t-il répondu à vos attentes ?",
        "tl": "Gaano natugunan ng aming serbisyo ang inyong inaasahan?",
        "zh-Hans": "我们的服务在多大程度上符合您的期望？",
        "zh-Hant": "我們的服務在多大程度上符合您的期望？",
    },
    "purchase": {
        "fr": "Comment s’est passé votre achat ?",
        "tl": "Kumusta ang inyong karanasan sa pagbili?",
        "zh-Hans": "您的购物体验如何？",
        "zh-Hant": "您的購物體驗如何？",
    },
    "recommend_product": {
        "fr": "Recommanderiez-vous le produit à vos amis ?",
        "tl": "Irerekomenda ba ninyo ang produkto sa inyong mga kaibigan?",
        "zh-Hans": "您会向朋友推荐这款产品吗？",
        "zh-Hant": "您會向朋友推薦這款產品嗎？",
    },
    "recommend_store": {
        "fr": "Recommanderiez-vous notre magasin dans son ensemble ?",
        "tl": "Irerekomenda ba ninyo ang aming tindahan sa kabuuan?",
        "zh-Hans": "总体而言，您会推荐我们的商店吗？",
        "zh-Hant": "整體而言，您會推薦我們的商店嗎？",
    },
}

templates = sa.table(
    "survey_templates",
    sa.column("template_id", sa.String),
    sa.column("version", sa.Integer),
    sa.column("questions", sa.JSON),
)


def _rewrite(change) -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(templates.c.version, templates.c.questions).where(templates.c.template_id == DEFAULT_TEMPLATE_ID)
    ).all()
    for version, questions in rows:
        changed = [{**question, "texts": change(question)} for question in questions]
        connection.execute(
            templates.update()
            .where(templates.c.template_id == DEFAULT_TEMPLATE_ID, templates.c.version == version)
            .values(questions=changed)
        )


def upgrade() -> None:
    # The languages there stay first (the first is the one a survey falls back to), the new ones follow.
    def added(question):
        new = {lang: text for lang, text in TEXTS.get(question["key"], {}).items() if lang not in question["texts"]}
        return {**question["texts"], **new}

    _rewrite(added)


def downgrade() -> None:
    _rewrite(lambda question: {lang: text for lang, text in question["texts"].items() if lang not in ADDED})
