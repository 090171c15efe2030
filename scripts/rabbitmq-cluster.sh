#!/usr/bin/env bash
# A RabbitMQ cluster of three nodes on this machine, each a deploy/local-rabbitmq.sh node with its
# own name, ports and data directory, clustered so that quorum queues keep a member on each:
#   scripts/rabbitmq-cluster.sh start          start the nodes (in parallel), join them, wait until clustered
#   scripts/rabbitmq-cluster.sh stop           stop every node
#   scripts/rabbitmq-cluster.sh urls           the AMQP_URL of the cluster: every node's URL, comma-separated
#   scripts/rabbitmq-cluster.sh stop-node N    stop node N (1-3), as a machine failure would
#   scripts/rabbitmq-cluster.sh start-node N   start node N again; it rejoins with its data
#   scripts/rabbitmq-cluster.sh ctl N ARGS…    rabbitmqctl on node N
# RABBITMQ_CLUSTER_PORTS (default "5681 5682 5683") are the nodes' AMQP ports and
# RABBITMQ_CLUSTER_DIST_PORTS (default: each AMQP port + 20000) their Erlang distribution ports;
# RABBITMQ_CLUSTER_DIR (default var/rabbitmq-cluster) holds node1/, node2/, node3/.
# Quorum-queue leaders are placed "balanced" over the nodes (rabbitmq.conf of each node).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
node_script=$here/deploy/local-rabbitmq.sh
read -r -a ports <<< "${RABBITMQ_CLUSTER_PORTS:-5681 5682 5683}"
read -r -a dist_ports <<< "${RABBITMQ_CLUSTER_DIST_PORTS:-$((ports[0] + 20000)) $((ports[1] + 20000)) $((ports[2] + 20000))}"
dir=${RABBITMQ_CLUSTER_DIR:-$here/var/rabbitmq-cluster}

node() {  # node N COMMAND…: deploy/local-rabbitmq.sh for node N
  local n=$1
  shift
  VAR_DIR=$dir/node$n LOCAL_RABBITMQ_PORT=${ports[$((n - 1))]} LOCAL_RABBITMQ_DIST_PORT=${dist_ports[$((n - 1))]} \
    "$node_script" "$@"
}
name() { echo "callcenter-${ports[$(($1 - 1))]}@localhost"; }

configure() {
  mkdir -p "$dir/node$1/rabbitmq"
  cat > "$dir/node$1/rabbitmq/rabbitmq.conf" <<CONF
queue_leader_locator = balanced
CONF
}

case "${1:-}" in
  start)
    for n in 1 2 3; do configure "$n"; done
    pids=()
    for n in 1 2 3; do node "$n" start & pids+=($!); done
    for pid in "${pids[@]}"; do wait "$pid"; done
    for n in 2 3; do
      if ! node "$n" ctl -q cluster_status --formatter json | grep -q "$(name 1)"; then
        node "$n" ctl -q stop_app
        node "$n" ctl -q join_cluster "$(name 1)"
        node "$n" ctl -q start_app
      fi
    done
    node 1 ctl -q await_online_nodes 3 --timeout 60 >/dev/null 2>&1 || {
      node 1 ctl cluster_status >&2
      echo "the cluster did not reach three running nodes" >&2
      exit 1
    }
    echo "RabbitMQ cluster of $(name 1), $(name 2), $(name 3) is up"
    ;;
  stop)
    for n in 3 2 1; do node "$n" stop; done
    ;;
  urls)
    urls=()
    for n in 1 2 3; do urls+=("$(node "$n" url)"); done
    (IFS=,; echo "${urls[*]}")
    ;;
  stop-node)
    node "${2:?node number}" stop
    ;;
  start-node)
    node "${2:?node number}" start
    ;;
  ctl)
    n=${2:?node number}
    shift 2
    node "$n" ctl "$@"
    ;;
  *)
    echo "usage: $0 start|stop|urls|stop-node N|start-node N|ctl N ..." >&2
    exit 2
    ;;
esac
