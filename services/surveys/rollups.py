"""The running sums every metric is read from: ``survey_answer_rollups`` (answers per day/week, group,
template, question and kind as answered) and ``survey_counts`` (responses and follow-up contacts),
added to in the transaction of the change, by one upsert each. The legacy ``survey_rollups`` (no
kind) is no longer written: the release that added the kinds was the last to need it."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from . import domain
from .domain import Sums
from .models import SurveyAnswerRollup, SurveyCount

SUM_COLUMNS = ("n", "total", "squares", *(f"c{score}" for score in domain.SCALE))
ROLLUP_KEY = ("span", "dimension", "day", "value", "template_id", "question", "kind")
COUNT_KEY = ("dimension", "day", "value", "template_id", "measure")


@functools.cache
def _increment_sql(dialect, table_name: str, key: tuple[str, ...], sums: tuple[str, ...], also: tuple[str, ...]):
    """INSERT INTO t (key, also, sums) VALUES (...) ON CONFLICT (key) DO UPDATE SET s = t.s + excluded.s, ...

    Driver SQL, sent with executemany of plain tuples: a complete response adds to 50 rollup rows,
    and SQLAlchemy's per-row parameter processing of the same Core statement (a dict per row)
    cost several times the database's own work while the write lock is held.
    """
    quote = dialect.identifier_preparer.quote
    table = quote(table_name)
    columns = [quote(name) for name in (*key, *also, *sums)]
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    increments = ", ".join(f"{quote(name)} = {table}.{quote(name)} + excluded.{quote(name)}" for name in sums)
    # Only the table's own column names go into the text; every value is a bound parameter.
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"  # noqa: S608
        f" ON CONFLICT ({', '.join(quote(name) for name in key)}) DO UPDATE SET {increments}"
    )


def increment(session, table, key, sums, rows: list[tuple], also: tuple[str, ...] = ()) -> None:
    """Add each row's sums (its last columns) to the row with its key, or insert it: one executemany."""
    if rows:
        connection = session.connection()
        connection.exec_driver_sql(_increment_sql(connection.dialect, table.name, key, sums, also), rows)


def add_rollup_rows(session, rows: list[tuple]) -> None:
    """Add rows (``ROLLUP_KEY``..., n, total, squares, c1..c10) to the rollups: one executemany."""
    increment(session, SurveyAnswerRollup.__table__, ROLLUP_KEY, SUM_COLUMNS, rows)


def add_rollups(session, deltas: Mapping[domain.RollupKey, Sums], sign: int = 1) -> None:
    """Add (or with sign=-1 take away) answers to the rollup rows, in one statement per table."""
    rows = [
        (*key, sign * sums.n, sign * sums.total, sign * sums.squares, *(sign * count for count in sums.counts))
        for key, sums in deltas.items()
    ]
    add_rollup_rows(session, rows)


def add_counts(session, template_id: str, day: str, dimensions: Mapping, measure: str, sign: int = 1) -> None:
    week = domain.week_of(day)
    rows = [
        (dimension, day, value, template_id, measure, week, sign)
        for dimension, value in domain.dimension_values(dimensions)
    ]
    increment(session, SurveyCount.__table__, COUNT_KEY, ("count",), rows, also=("week",))
