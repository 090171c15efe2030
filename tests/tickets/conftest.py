from tests.tickets.mail_fixtures import imap_server, mailbox, smtp_server  # noqa: F401 - fixtures
from tests.tickets.support import app, client, database  # noqa: F401 - fixtures
