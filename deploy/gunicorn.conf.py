"""gunicorn settings shared by the four services.

    SERVICE=tickets gunicorn -c deploy/gunicorn.conf.py 'services.tickets.app:create_app()'

The port comes from ``<SERVICE>_PORT`` (defaults: gateway 8000, tickets 8001,
callrouting 8002, surveys 8003); ``WEB_CONCURRENCY`` sets the number of workers.

The gateway runs gunicorn's threaded worker (gthread, ``GATEWAY_THREADS`` threads per
worker, 32 by default): each open live-updates stream (``GET /api/live``, Server-Sent Events)
holds one thread for as long as it is open, and a sync worker would be held by a single one.
So a gateway serves ``WEB_CONCURRENCY`` x ``GATEWAY_THREADS`` requests at once, streams
included; ``LIVE_MAX_STREAMS`` (per worker) keeps threads free for ordinary requests.
The other services keep the sync worker.

Each worker tunes Python's garbage collector once its app is loaded (``post_worker_init``):
what the app holds from then on (modules, schemas, the SQLAlchemy metadata) is frozen out of
the collector's sweeps (``gc.freeze``), and the youngest generation is collected after
``GC_GEN0_THRESHOLD`` (50,000) allocations instead of 700. A request that builds a large
answer (the survey metrics over a year: half a million small objects) no longer sets off
dozens of full collections of everything the process holds: that was the metrics' p99
(143 ms against a 50 ms median in-process; 52 ms after). ``GC_GEN0_THRESHOLD=0`` keeps
Python's defaults.
"""

import gc
import os

from shared.config import DEFAULT_PORTS

_service = os.environ.get("SERVICE", "gateway")
bind = os.environ.get(
    "BIND",
    f"{os.environ.get('BIND_HOST', '127.0.0.1')}:"
    f"{os.environ.get(f'{_service.upper()}_PORT', DEFAULT_PORTS.get(_service, 8000))}",
)
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
if _service == "gateway":
    worker_class = "gthread"
    threads = int(os.environ.get("GATEWAY_THREADS", "32"))
else:
    worker_class = "sync"
timeout = 30
graceful_timeout = 10
keepalive = 5
proc_name = f"callcenter-{_service}"
# gunicorn's control socket lives at one path per user, so four servers would collide.
control_socket_disable = True
accesslog = None  # the app logs every request itself, as JSON with its request id
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# gunicorn's own lines (booting, worker exits) as JSON too, like every other log line.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "{asctime}{levelname}{name}{message}",
            "style": "{",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "static_fields": {"service": _service},
        }
    },
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    # gunicorn merges this over its defaults key by key: name every logger its defaults name.
    "root": {"handlers": ["stdout"], "level": loglevel.upper()},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": [], "propagate": False},  # the app logs requests, with their ids
        "alembic": {"level": "WARNING"},  # it narrates at import, before the app sets up logging
    },
}


def post_worker_init(_worker):
    threshold = int(os.environ.get("GC_GEN0_THRESHOLD", "50000"))
    if threshold > 0:
        gc.collect()
        gc.freeze()
        _gen0, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(threshold, gen1, gen2)


def child_exit(_server, worker):
    # Let the multi-process Prometheus registry forget a worker that is gone.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
