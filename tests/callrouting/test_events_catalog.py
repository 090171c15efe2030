"""callrouting's events modules list what it publishes and consumes, as the catalog says."""

from services.callrouting import events
from shared import event_catalog


def test_the_events_modules_list_everything_callrouting_publishes_and_consumes():
    published = {entry.name for entry in event_catalog.CATALOG.values() if entry.publisher == "callrouting"}
    assert set(events.PUBLISHES) == published
    assert sorted(events.HANDLERS) == event_catalog.consumed_by("callrouting")
