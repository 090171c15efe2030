"""The demo history in the surveys service's database: customers and purchases heard of, the
follow-up contacts, and a month of survey responses with the rollups every metric reads.

The replicas, purchases and contacts come in through this service's own consumer handlers
(``events.HANDLERS``) fed the demo world's events, as the broker would have delivered them.
Responses are stored as rows dated in the past, and counted into the rollups and counts with
the service's own functions (``domain.recompute_rollups``, ``rollups.add_rollups``,
``rollups.add_counts``), so the metrics read them as they read live ones. Nothing goes to the
outbox: the low scores' service-recovery tickets are part of the tickets service's seed.
"""

from __future__ import annotations

from sqlalchemy import insert

from services.seed import envelopes
from services.seed.plan import SURVEY_TEMPLATE_ID
from shared.db import Database
from shared.unit_of_work import UnitOfWork

from . import domain, events
from .domain import COMPLETE
from .models import SurveyResponse
from .responses import dimensions_of
from .rollups import add_counts, add_rollups
from .views import template_versions

SOURCE = "surveys"


def write(database: Database, world) -> bool:
    """Write ``world``'s surveys part; False (and nothing written) when it is already there."""
    with UnitOfWork(database, SOURCE) as uow:
        session = uow.session
        if world.responses and session.get(SurveyResponse, world.responses[0].id) is not None:
            return False
        for customer in world.customers:
            events.HANDLERS["customer.created"](uow, envelopes.customer_created(world, customer))
        for purchase in world.purchases:
            events.HANDLERS["purchase.recorded"](uow, envelopes.purchase_recorded(world, purchase))
        campaigns = {campaign.id: campaign for campaign in world.campaigns}
        for entry in world.entries:
            for index, attempt in enumerate(entry.attempts):
                state = entry.state if index == len(entry.attempts) - 1 else "pending"
                envelope = envelopes.callentry_completed(world, campaigns[entry.campaign_id], entry, attempt, state)
                events.HANDLERS["callentry.completed"](uow, envelope)
        session.flush()
        rows = [_response_row(response) for response in world.responses]
        if rows:
            session.connection().execute(insert(SurveyResponse.__table__), rows)
        complete = [{**row, **dimensions_of(row)} for row in rows if row["status"] == COMPLETE]
        session.flush()
        templates = {(t.template_id, t.version): t for t in template_versions(uow)}
        add_rollups(session, domain.recompute_rollups(complete, templates))
        for row in rows:
            measure = "completed" if row["status"] == COMPLETE else "partial"
            add_counts(session, row["template_id"], row["day"], dimensions_of(row), measure)
        uow.commit()
    return True


def _response_row(response) -> dict:
    return {
        "response_id": response.id,
        "template_id": SURVEY_TEMPLATE_ID,
        "template_version": 1,
        "customer_id": response.customer_id,
        "channel": response.channel,
        "status": response.status,
        "agent_id": response.agent_id,
        "call_id": response.call_id,
        "entry_id": response.entry_id,
        "campaign_id": response.campaign_id,
        "purchase_id": response.purchase_id,
        "product": response.product,
        "answers": dict(response.answers),
        "comment": response.comment,
        "language": response.language,
        "started_at": response.started_at,
        "completed_at": response.completed_at,
        "day": response.day,
    }
