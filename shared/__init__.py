"""The project's common library: configuration, logging, databases, HTTP plumbing and
the event backbone (envelope, outbox relay, consumers, dead letters).

Services import from here; nothing here imports a service.
"""
