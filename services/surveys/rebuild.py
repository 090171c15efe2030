"""``python -m services surveys rebuild-rollups``: the rollups recomputed from the stored responses.

``survey_answer_rollups`` is emptied and written again from the complete responses, each answer
under the kind its question has in the template version answered (``domain.recompute_rollups``),
in one transaction. Idempotent: running it twice writes the same rows. Safe while the service
runs: the transaction first takes the rollup table for itself (PostgreSQL: ``LOCK TABLE ... IN
EXCLUSIVE MODE``, which waits for the transactions already adding to it to commit; SQLite: the
write lock its first delete takes), and only then reads the responses. A response stored meanwhile
waits for the rebuild to commit and is added to the rebuilt rows; none is counted twice or lost.
Submissions wait for as long as it runs. ``survey_counts`` do not depend on templates and are left
as they are.
"""

from __future__ import annotations

from sqlalchemy import delete, select, text

from shared.config import Settings
from shared.db import Database
from shared.unit_of_work import UnitOfWork

from . import domain
from .domain import COMPLETE
from .models import SurveyAnswerRollup, SurveyResponse
from .responses import dimensions_of
from .rollups import add_rollups
from .views import template_versions

SOURCE = "surveys"
_COLUMNS = ("template_id", "template_version", "day", "answers", "product", "agent_id", "campaign_id", "channel")


def rebuild_rollups(database: Database) -> int:
    """Recompute every rollup row from the responses; how many rows ``survey_answer_rollups`` holds."""
    with UnitOfWork(database, SOURCE) as uow:
        session = uow.session
        if session.connection().dialect.name == "postgresql":
            session.execute(text("LOCK TABLE survey_answer_rollups IN EXCLUSIVE MODE"))
        session.execute(delete(SurveyAnswerRollup))
        templates = {(t.template_id, t.version): t for t in template_versions(uow)}
        table = SurveyResponse.__table__
        statement = select(*(table.c[name] for name in _COLUMNS)).where(
            table.c.status == COMPLETE, table.c.day.is_not(None)
        )
        complete = []
        for row in session.execute(statement).mappings():
            complete.append({**row, **dimensions_of(row)})
        totals = domain.recompute_rollups(complete, templates)
        add_rollups(session, totals)
        uow.commit()
    return len(totals)


def main(argv: list[str]) -> None:
    """``surveys rebuild-rollups``: rebuild against the surveys database of the environment."""
    if argv != ["rebuild-rollups"]:
        raise SystemExit("usage: python -m services surveys rebuild-rollups")
    database = Database(Settings.from_env("surveys").database_url)
    try:
        rows = rebuild_rollups(database)
    finally:
        database.dispose()
    print(f"surveys: rollups rebuilt from the stored responses ({rows} rows)")
