"""The gateway's calls to the services are measured by service and outcome (Prometheus)."""

import re


def sample(client, headers, service: str, outcome: str) -> float:
    text = client.get("/metrics", headers=headers).get_data(as_text=True)
    pattern = rf'upstream_call_duration_seconds_count\{{outcome="{outcome}",service="{service}"\}} (\S+)'
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_calls_to_the_services_are_counted_by_outcome(stack):
    client, agent = stack.client, stack.bearer("agent-7", "agent")
    counted = ("tickets", "ok"), ("surveys", "unreachable"), ("callrouting", "unreachable")
    before = {key: sample(client, agent, *key) for key in counted}

    assert client.get("/api/tickets/tickets", headers=agent).status_code == 200
    stack.servers["surveys"].stop()
    assert client.get("/api/surveys/templates", headers=agent).status_code == 503

    after = {key: sample(client, agent, *key) for key in counted}
    assert after[("tickets", "ok")] - before[("tickets", "ok")] == 1
    assert after[("surveys", "unreachable")] - before[("surveys", "unreachable")] == 1
    assert after[("callrouting", "unreachable")] == before[("callrouting", "unreachable")]
