"""What the surveys service holds about a customer, to export it and to erase it (``customer.erased``).

Erasure keeps every response with its scores, channel, agent, product and day, and the rollups
and counts every metric is computed from are not touched, so CSAT, NPS and the response rate
stay what they were. What goes: the free-text comment and the customer replica's details.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.privacy import as_record, erased_customer_ids, erasure_handler, records, scrub_customer_replicas
from shared.replicas import merged_customer_ids

from .models import (
    CustomerReplica,
    CustomerReplicaPhone,
    PrivacyErasure,
    SurveyContact,
    SurveyLink,
    SurveyPurchase,
    SurveyResponse,
    SurveyResurvey,
)


def export_customer(session: Session, customer_id: str) -> dict:
    ids = merged_customer_ids(session, CustomerReplica, customer_id)
    responses = list(
        session.scalars(
            select(SurveyResponse).where(SurveyResponse.customer_id.in_(ids)).order_by(SurveyResponse.started_at)
        )
    )
    response_ids = [response.response_id for response in responses]

    def rows(model, *where):
        return records(session, select(model).where(*where))

    return {
        "customer_replicas": rows(CustomerReplica, CustomerReplica.customer_id.in_(ids)),
        "survey_responses": [as_record(response) for response in responses],
        "survey_links": rows(SurveyLink, SurveyLink.customer_id.in_(ids)),
        "survey_contacts": rows(SurveyContact, SurveyContact.customer_id.in_(ids)),
        "survey_purchases": rows(SurveyPurchase, SurveyPurchase.customer_id.in_(ids)),
        "survey_resurveys": rows(SurveyResurvey, SurveyResurvey.response_id.in_(response_ids)),
    }


def erase_customer(session: Session, data: dict) -> None:
    ids = erased_customer_ids(data)
    session.flush()
    scrub_customer_replicas(session, CustomerReplica, CustomerReplicaPhone, ids)
    session.execute(
        update(SurveyResponse)
        .where(SurveyResponse.customer_id.in_(ids))
        .values(comment=None)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


on_customer_erased = erasure_handler(PrivacyErasure, erase_customer)


def apply_retention(session: Session, settings, now) -> dict:
    """Survey comments older than RETENTION_SURVEY_COMMENTS_DAYS removed (the scores stay)."""
    from datetime import timedelta

    from shared.privacy import retention

    done = {"survey_comments": 0}
    if days := retention(settings, "survey_comments"):
        done["survey_comments"] = session.execute(
            update(SurveyResponse)
            .where(SurveyResponse.started_at < now - timedelta(days=days), SurveyResponse.comment.is_not(None))
            .values(comment=None)
            .execution_options(synchronize_session=False)
        ).rowcount
    return done


def retention_job(database, settings) -> None:
    from shared.models import utcnow
    from shared.unit_of_work import UnitOfWork

    with UnitOfWork(database, source=settings.service) as uow:
        apply_retention(uow.session, settings, utcnow())
        uow.commit()
