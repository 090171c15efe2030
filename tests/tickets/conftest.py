from tests.tickets.support import app, client, database  # noqa: F401 - fixtures
