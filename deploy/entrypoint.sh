#!/bin/sh
# The image's one entry point: the command names the process (docs/deploy.md, "Commands").
#   gateway | tickets | callrouting | surveys     the service's web server (gunicorn, deploy/gunicorn.conf.py)
#   <service>-worker [relay|consume|jobs|all]     its event worker (python -m services.<service>.worker)
#   migrate [<service> ...]                       the one-shot migration job (python -m services migrate)
#   setup                                         migrate, declare the broker topology, create the first admin
#   healthcheck                                   the HEALTHCHECK: /healthz of this container's web server
#   anything else                                 run as given (python -m services.gateway.cli users ..., sh)
set -eu
services="gateway tickets callrouting surveys"
: "${PROMETHEUS_MULTIPROC_DIR:=/tmp/metrics}"
export PROMETHEUS_MULTIPROC_DIR

is_service() { for s in $services; do [ "$s" = "$1" ] && return 0; done; return 1; }

command=${1:-}
case "$command" in
  healthcheck)
    # Written by the web server's start below; a worker container has no HTTP port and no check.
    [ -f /tmp/healthcheck-url ] || exit 0
    exec python -c 'import sys, urllib.request; sys.exit(urllib.request.urlopen(open("/tmp/healthcheck-url").read(), timeout=3).status != 200)'
    ;;
  migrate | setup)
    shift
    exec python -m services "$command" "$@"
    ;;
  *-worker)
    service=${command%-worker}
    is_service "$service" || { echo "unknown service in $command" >&2; exit 2; }
    shift
    rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    exec python -m "services.$service.worker" "${1:-all}"
    ;;
  *)
    if is_service "$command"; then
      port_variable=$(echo "${command}_PORT" | tr '[:lower:]' '[:upper:]')
      port=$(python -c "import os, shared.config as c; print(os.environ.get('$port_variable', c.DEFAULT_PORTS['$command']))")
      echo "http://127.0.0.1:$port/healthz" > /tmp/healthcheck-url
      rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
      SERVICE=$command exec gunicorn -c deploy/gunicorn.conf.py "services.$command.app:create_app()"
    fi
    exec "$@"
    ;;
esac
