"""The event envelope and the catalog: what may be published and what a consumer accepts."""

import json
import re
import uuid
from pathlib import Path

import pytest

from shared import event_catalog
from shared.events import Envelope, InvalidEvent
from shared.logs import correlated

CUSTOMER = {"customer_id": str(uuid.uuid4()), "name": "Ada Lovelace", "phone": "+4915112345678", "email": None}


def test_a_valid_envelope_survives_the_round_trip():
    with correlated("req-123"):
        envelope = Envelope(type="customer.created", data=CUSTOMER, source="tickets").validate()
    received = Envelope.from_json(envelope.to_json())
    assert received == envelope
    assert received.correlation_id == "req-123"
    assert received.occurred_at.endswith("Z")
    uuid.UUID(received.id)


def test_an_event_written_outside_a_request_gets_a_fresh_correlation_id():
    first = Envelope(type="customer.created", data=CUSTOMER, source="tickets")
    second = Envelope(type="customer.created", data=CUSTOMER, source="tickets")
    assert first.correlation_id and second.correlation_id and first.correlation_id != second.correlation_id


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "Customer Created"}, "type"),
        ({"version": 0}, "version"),
        ({"id": "not-a-uuid"}, "id"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2026-11-24T10:00:00"}, "occurred_at"),  # no zone: ambiguous
        ({"source": ""}, "source"),
    ],
)
def test_a_malformed_envelope_is_refused_naming_the_field(change, field):
    document = json.loads(Envelope(type="customer.created", data=CUSTOMER, source="tickets").to_json())
    document.update(change)
    with pytest.raises(InvalidEvent) as refused:
        Envelope.from_json(json.dumps(document).encode())
    assert field in refused.value.errors


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_a_message_that_is_not_an_envelope_is_refused(raw):
    with pytest.raises(InvalidEvent):
        Envelope.from_json(raw)


def test_an_event_type_missing_from_the_catalog_cannot_be_published():
    with pytest.raises(InvalidEvent) as refused:
        Envelope(type="customer.teleported", data={}, source="tickets").validate()
    assert "type" in refused.value.errors


def test_data_that_breaks_the_contract_cannot_be_published():
    with pytest.raises(InvalidEvent) as refused:
        Envelope(type="customer.created", data={**CUSTOMER, "phone": "0151 123"}, source="tickets").validate()
    assert "phone" in refused.value.errors["data"]


def test_a_publisher_may_not_send_fields_outside_the_contract_but_a_consumer_tolerates_them():
    extended = {**CUSTOMER, "loyalty_tier": "gold"}
    with pytest.raises(InvalidEvent):
        Envelope(type="customer.created", data=extended, source="tickets").validate()
    raw = json.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": "customer.created",
            "version": 1,
            "occurred_at": "2026-11-24T10:00:00.000000Z",
            "source": "tickets",
            "correlation_id": "abc",
            "data": extended,
        }
    ).encode()
    assert Envelope.from_json(raw).data["loyalty_tier"] == "gold"


def test_docs_events_md_describes_exactly_the_catalog():
    document = (Path(__file__).parent.parent / "docs" / "events.md").read_text()
    headings = re.findall(r"^### `([a-z_.]+)` v(\d+)$", document, flags=re.M)
    assert sorted((name, int(version)) for name, version in headings) == sorted(event_catalog.CATALOG)
    for (name, version), entry in event_catalog.CATALOG.items():
        section = document.split(f"### `{name}` v{version}", 1)[1].split("\n### ", 1)[0]
        assert f"Publisher: {entry.publisher}" in section, name
        assert "Consumers: " + ", ".join(entry.consumers) in section, name
        for field in entry.schema().fields:
            assert f"`{field}`" in section, f"{name}: field {field} is not documented"
