"""``python -m services.callrouting.worker [relay|consume|all]``."""

from shared.worker import run_worker

from .events import HANDLERS
from .models import MIGRATIONS

if __name__ == "__main__":
    run_worker("callrouting", MIGRATIONS, HANDLERS)
