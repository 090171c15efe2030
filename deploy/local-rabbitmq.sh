#!/usr/bin/env bash
# A project-local RabbitMQ node for development: data and logs under var/rabbitmq.
#   deploy/local-rabbitmq.sh start   start it in the background and wait until it is up
#   deploy/local-rabbitmq.sh stop    stop it
#   deploy/local-rabbitmq.sh url     print its AMQP URL
#   deploy/local-rabbitmq.sh ctl …   rabbitmqctl on this node (e.g. ctl join_cluster, as scripts/rabbitmq-cluster.sh does)
# A rabbitmq.conf in its data directory (var/rabbitmq/rabbitmq.conf) is its configuration.
# LOCAL_RABBITMQ_PORT (default 5673) keeps it clear of a system broker on 5672;
# LOCAL_RABBITMQ_DIST_PORT (default port + 20000) is its Erlang distribution port.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
port=${LOCAL_RABBITMQ_PORT:-5673}
base=${VAR_DIR:-$here/var}/rabbitmq
bin=/usr/lib/rabbitmq/bin
export RABBITMQ_NODENAME=callcenter-$port@localhost
export RABBITMQ_NODE_PORT=$port
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_DIST_PORT=${LOCAL_RABBITMQ_DIST_PORT:-$((port + 20000))}
export RABBITMQ_MNESIA_BASE=$base/mnesia
export RABBITMQ_LOG_BASE=$base/log
export RABBITMQ_ENABLED_PLUGINS_FILE=$base/enabled_plugins
export RABBITMQ_CONFIG_FILE=$base/rabbitmq   # none: defaults
export RABBITMQ_PID_FILE=$base/pid
export ERL_CRASH_DUMP=$base/erl_crash.dump

ctl() { "$bin/rabbitmqctl" -n "$RABBITMQ_NODENAME" "$@"; }

case "${1:-}" in
  start)
    mkdir -p "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
    [ -f "$RABBITMQ_ENABLED_PLUGINS_FILE" ] || echo "[]." > "$RABBITMQ_ENABLED_PLUGINS_FILE"
    if ctl -q ping >/dev/null 2>&1; then
      echo "local RabbitMQ already running on port $port"
    else
      echo "starting a local RabbitMQ node on port $port (logs: $RABBITMQ_LOG_BASE)"
      # In its own session, so that Ctrl-C on `make run` reaches it only through `stop`.
      setsid "$bin/rabbitmq-server" > "$RABBITMQ_LOG_BASE/server.out" 2>&1 < /dev/null &
      server=$!
      for _ in $(seq 1 180); do
        ctl -q await_startup --timeout 5 >/dev/null 2>&1 && exit 0
        if ! kill -0 "$server" 2>/dev/null; then
          echo "RabbitMQ failed to start; its output:" >&2
          tail -n 40 "$RABBITMQ_LOG_BASE/server.out" >&2
          exit 1
        fi
        sleep 0.5
      done
      echo "RabbitMQ did not come up within 90 s; see $RABBITMQ_LOG_BASE" >&2
      exit 1
    fi
    ;;
  stop)
    ctl -q stop >/dev/null 2>&1 || true
    ;;
  url)
    echo "amqp://guest:guest@127.0.0.1:$port/%2F"
    ;;
  ctl)
    shift
    ctl "$@"
    ;;
  *)
    echo "usage: $0 start|stop|url|ctl ..." >&2
    exit 2
    ;;
esac
