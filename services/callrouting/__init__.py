"""The callrouting service: Follow-up call lists, inbound routing and agent states."""
