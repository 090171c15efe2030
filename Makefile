# The entry points. `make run` and `make test` do all their own set-up on a fresh Debian machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup run seed test test-postgres test-pgbouncer test-scale fuzz bench lint format deadletters clean simulate translations

help:
	@echo "make run            set up and start the four services, their workers and (if AMQP_URL is unset) a local broker"
	@echo "make seed           fill the databases with a month of demo data and demo users (printed once;"
	@echo "                    SEED=7 for another world; \`make run\` does it by itself on empty databases)"
	@echo "make test           set up and run the whole suite against a real RabbitMQ node and SQLite"
	@echo "make test-postgres  run the database tests again on PostgreSQL (TEST_DATABASE_URL, or a throwaway server)"
	@echo "make fuzz           schemathesis over every spec through the gateway (part of make test; FUZZ_EXAMPLES=6"
	@echo "                    requests per operation and role); prints operations, requests and findings"
	@echo "make test-pgbouncer the database tests through PgBouncer in transaction mode"
	@echo "make test-scale     two replicas of everything on a 3-node RabbitMQ cluster and PostgreSQL, under faults"
	@echo "make bench          measure HTTP and event throughput beside a bare endpoint and raw pika"
	@echo "make simulate       play a day of inbound calls through the signed webhooks of a running \`make run\`"
	@echo "                    (its gateway at GATEWAY_URL, else 127.0.0.1:GATEWAY_PORT, 8000 by default)"
	@echo "                    (SIMULATE_ARGS=\"--calls 200 --speed 600 --date 2026-11-23\")"
	@echo "make translations   collect the console's strings into its catalogs (services/gateway/translations),"
	@echo "                    new ones left to translate; \`make setup\` compiles them"
	@echo "make lint           ruff"
	@echo "make deadletters SERVICE=callrouting   list parked events (python -m shared.deadletters --help)"

$(VENV)/.installed: requirements.lock
	@scripts/ensure-system.sh venv
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	touch $@

# The console's front-end libraries (htmx, Chart.js) from the npm registry, as package-lock.json pins them.
node_modules/.installed: package.json package-lock.json
	@scripts/ensure-system.sh npm
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# The console's gettext catalogs (docs/console.md, "Languages"): the .po files are the source, compiled here.
CATALOGS := $(wildcard services/gateway/translations/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGS:.po=.mo)
services/gateway/translations/%/LC_MESSAGES/messages.mo: services/gateway/translations/%/LC_MESSAGES/messages.po $(VENV)/.installed
	$(VENV)/bin/pybabel compile --use-fuzzy -i $< -o $@ -l $* >/dev/null

setup: $(VENV)/.installed node_modules/.installed $(COMPILED)
	@mkdir -p var

# Extract every _() of the console's templates and modules, and add what is new to each catalog
# (an untranslated entry fails tests/gateway/console/test_translations.py until it is translated).
translations: $(VENV)/.installed
	cd services/gateway && ../../$(VENV)/bin/pybabel extract -F babel.cfg -k N_ --no-location --sort-output \
	  --project=callcenter-console --copyright-holder="the call center's developers" -o translations/messages.pot . >/dev/null
	cd services/gateway && ../../$(VENV)/bin/pybabel update -i translations/messages.pot -d translations \
	  --no-fuzzy-matching --ignore-obsolete --width=120 --ignore-pot-creation-date >/dev/null
	$(MAKE) --no-print-directory $(COMPILED)

run: setup
	scripts/run.sh

# Deterministic (SEED, default 2026) and idempotent: what is already there is left as it is.
seed: setup
	$(PY) -m services.seed $(if $(SEED),--seed $(SEED)) $(SEED_ARGS)

test: setup
	@scripts/ensure-system.sh rabbitmq chromium dovecot cjk-fonts
	$(PY) -m pytest

test-postgres: setup
	@scripts/ensure-system.sh rabbitmq postgresql
	scripts/with-postgres.sh $(PY) -m pytest -m "db and not console and not fuzz and not scale"

fuzz: setup
	@scripts/ensure-system.sh rabbitmq
	$(PY) -m pytest tests/fuzz -s -p no:logging

# The database tests once more, through PgBouncer (Debian's) in transaction mode in front of PostgreSQL.
test-pgbouncer: setup
	@scripts/ensure-system.sh rabbitmq postgresql pgbouncer
	scripts/with-postgres.sh scripts/with-pgbouncer.sh $(PY) -m pytest -m "db and not console and not fuzz and not scale"

bench: setup
	@scripts/ensure-system.sh rabbitmq wrk chromium postgresql haproxy dovecot
	scripts/with-postgres.sh $(PY) -m bench

# The simulator comes in through the gateway like the phone system and a supervisor's script:
# without CALLCENTER_TOKEN it takes a one-day API token of the admin from the gateway's CLI.
simulate: setup
	CALLCENTER_TOKEN=$${CALLCENTER_TOKEN:-$$($(PY) -m services.gateway.cli tokens create $${GATEWAY_ADMIN_USER:-admin} --label simulate --days 1)} \
	  $(PY) -m services.callrouting.simulate $(SIMULATE_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

deadletters: setup
	$(PY) -m shared.deadletters list $(SERVICE)

clean:
	rm -rf var .pytest_cache test-artifacts

# Two replicas of everything on a 3-node RabbitMQ cluster and PostgreSQL, with faults, under load
# (tests/scale/test_scale.py); prints sent/applied/lost/doubled per consumer.
test-scale: setup
	@scripts/ensure-system.sh rabbitmq postgresql haproxy
	scripts/with-postgres.sh $(PY) -m pytest -m scale tests/scale -s --timeout 600
