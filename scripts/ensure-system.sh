#!/usr/bin/env bash
# Make sure the system packages the project needs are present. As root, install what is
# missing from Debian's archive; otherwise say exactly what to install, and fail.
#   scripts/ensure-system.sh venv        python3 with venv/ensurepip
#   scripts/ensure-system.sh rabbitmq    rabbitmq-server (for a local node and the tests)
#   scripts/ensure-system.sh wrk         the HTTP load generator for make bench
#   scripts/ensure-system.sh postgresql  a PostgreSQL server for the PostgreSQL test run
#   scripts/ensure-system.sh npm         Node.js and npm, which install the console's front-end libraries
#   scripts/ensure-system.sh chromium    the browser the console's tests drive (Playwright, no browser download)
#   scripts/ensure-system.sh pgbouncer   the connection pooler the PostgreSQL runs put in front (transaction mode)
#   scripts/ensure-system.sh haproxy     the load balancer and TLS proxy of make test-scale
#   scripts/ensure-system.sh dovecot     an IMAP server the mail tests start on a free port (dovecot-imapd)
#   scripts/ensure-system.sh cjk-fonts   a Chinese font, so the console's zh-Hans/zh-Hant screenshots show the text
set -euo pipefail

have() {
  case "$1" in
    venv) python3 -c 'import ensurepip, venv' >/dev/null 2>&1 ;;
    rabbitmq) [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] ;;
    wrk) command -v wrk >/dev/null 2>&1 ;;
    postgresql) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ;;
    npm) command -v npm >/dev/null 2>&1 ;;
    chromium) [ -x /usr/bin/chromium ] ;;
    pgbouncer) [ -x /usr/sbin/pgbouncer ] ;;
    haproxy) [ -x /usr/sbin/haproxy ] ;;
    dovecot) [ -x /usr/sbin/dovecot ] ;;
    cjk-fonts) [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] ;;
  esac
}
package() {
  case "$1" in
    venv) echo python3-venv ;;
    rabbitmq) echo rabbitmq-server ;;
    wrk) echo wrk ;;
    postgresql) echo postgresql ;;
    npm) echo npm ;;
    chromium) echo chromium ;;
    pgbouncer) echo pgbouncer ;;
    haproxy) echo haproxy ;;
    dovecot) echo dovecot-imapd ;;
    cjk-fonts) echo fonts-wqy-microhei ;;
  esac
}

missing=()
for want in "$@"; do have "$want" || missing+=("$(package "$want")"); done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packaged daemons must not start system-wide on install: the project runs its own.
  policy=/usr/sbin/policy-rc.d
  created_policy=no
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=yes; fi
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  [ "$created_policy" = yes ] && rm -f "$policy"
  exit 0
fi
echo "missing system packages: ${missing[*]}" >&2
echo "install them with:  sudo apt-get install -y ${missing[*]}" >&2
exit 1
