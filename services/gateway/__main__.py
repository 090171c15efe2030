"""``python -m services.gateway ...``: the gateway's user CLI (``services/gateway/cli.py``)."""

import sys

from .cli import main

sys.exit(main())
