#!/usr/bin/env bash
# make run: a broker (AMQP_URL, or a project-local node), migrated databases, and the
# four services with their event workers under supervisord (deploy/supervisord.conf): a process
# that dies is restarted on its own, the others keep running. Ctrl-C stops everything, each
# process within its own graceful time.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export VAR_DIR=${VAR_DIR:-$PWD/var}
export PROJECT_DIR=$PWD
# Phone webhooks are signed for the URL the phone system calls (shared.webhooks): pinned to the
# gateway's address here; set PUBLIC_BASE_URL to the public one behind a proxy or tunnel.
export PUBLIC_BASE_URL=${PUBLIC_BASE_URL:-http://127.0.0.1:${GATEWAY_PORT:-8000}}

started_broker=no
if [ -z "${AMQP_URL:-}" ]; then
  scripts/ensure-system.sh rabbitmq
  deploy/local-rabbitmq.sh start
  export AMQP_URL=$(deploy/local-rabbitmq.sh url)
  started_broker=yes
fi
stop_broker() { [ "$started_broker" = yes ] && deploy/local-rabbitmq.sh stop && echo "local RabbitMQ stopped"; }
trap stop_broker EXIT

# Secrets come from the environment. For a local run without them, generate development
# secrets once and keep them in var/ (never in the repository), so `make simulate` and the
# services agree across restarts.
secrets="$VAR_DIR/dev-secrets.env"
for name in INTERNAL_AUTH_SECRET TWILIO_AUTH_TOKEN PHONE_WEBHOOK_SECRET SURVEY_LINK_SECRET; do
  if [ -z "${!name:-}" ]; then
    mkdir -p "$VAR_DIR"; touch "$secrets"; chmod 600 "$secrets"
    grep -q "^$name=" "$secrets" || echo "$name=$(python -c 'import secrets; print(secrets.token_hex(24))')" >>"$secrets"
    export "$(grep "^$name=" "$secrets")"
  fi
done

# MAIL_DEV=1: a local SMTP sink (aiosmtpd) takes every mail the workers send and keeps it under var/mail/ (a maildir).
if [ "${MAIL_DEV:-}" = 1 ]; then
  mkdir -p "$VAR_DIR"  # aiosmtpd makes the maildir (new/, cur/, tmp/) when var/mail/ does not exist yet
  python -m aiosmtpd -n -l "127.0.0.1:${MAIL_DEV_PORT:-8025}" -c aiosmtpd.handlers.Mailbox "$VAR_DIR/mail" & mail_sink=$!
  trap 'kill $mail_sink 2>/dev/null || true; stop_broker' EXIT
  export MAIL_SMTP_HOST=127.0.0.1 MAIL_SMTP_PORT="${MAIL_DEV_PORT:-8025}" MAIL_SMTP_SECURITY=none
fi

python -m services setup   # migrate every database, declare the broker topology

# A fresh installation gets a month of demo data and demo users (make seed); SEED_DEMO_DATA=no skips it.
if [ "${SEED_DEMO_DATA:-yes}" != no ]; then
  python -m services.seed --if-empty
fi

rm -rf "$VAR_DIR/metrics" && mkdir -p "$VAR_DIR"/metrics/{gateway,tickets,callrouting,surveys}
echo "starting: gateway :${GATEWAY_PORT:-8000}  tickets :${TICKETS_PORT:-8001}  callrouting :${CALLROUTING_PORT:-8002}  surveys :${SURVEYS_PORT:-8003}  broker $AMQP_URL"
echo "phone webhooks are checked against $PUBLIC_BASE_URL"
# Not exec: the EXIT trap stops the local broker once supervisord has stopped everything.
supervisord -c deploy/supervisord.conf
