# roi-worker: `make help` lists the targets. The README's two commands are `make demo` (with the
# pipeline) and `make test`; both install and start everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help venv constraints services services-stop services-status browser lint format typecheck unit test \
	screenshots soak bench bench-api bench-startup schemas migrate demo api clean

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SERVICES := deploy/local/services.sh
ENV_FILE := $(or $(ROI_SERVICES_ENV_FILE),.local/services.env)

# Runs $(1) with ROI_KAFKA_BOOTSTRAP_SERVERS and ROI_DATABASE_URL set: taken from the environment
# when both are already there, otherwise from the local services, started first if needed.
define with_services
if [ -n "$$ROI_KAFKA_BOOTSTRAP_SERVERS" ] && [ -n "$$ROI_DATABASE_URL" ]; then \
	echo "using the Kafka and PostgreSQL given by ROI_KAFKA_BOOTSTRAP_SERVERS and ROI_DATABASE_URL"; \
else \
	$(SERVICES) start && set -a && . $(ENV_FILE) && set +a; \
fi && $(1)
endef

help: ## list the targets
	@echo "usage: make TARGET"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create .venv and install roi-worker with its dev tools

# Every version pinned by constraints.txt, so that an install is the same on every machine.
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "roi-worker needs Python >= 3.11; set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

CONSTRAINTS_VENV := .cache/constraints-venv
constraints: ## re-pin constraints.txt: the newest versions pyproject.toml allows, resolved afresh
	rm -rf $(CONSTRAINTS_VENV)
	$(PYTHON) -m venv $(CONSTRAINTS_VENV)
	$(CONSTRAINTS_VENV)/bin/pip install --quiet --upgrade pip
	$(CONSTRAINTS_VENV)/bin/pip install --quiet -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; $(CONSTRAINTS_VENV)/bin/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(CONSTRAINTS_VENV)

services: ## start local Kafka and PostgreSQL (idempotent); writes .local/services.env
	@$(SERVICES) start

services-stop: ## stop the local Kafka and PostgreSQL
	@$(SERVICES) stop

services-status: ## say whether the local Kafka and PostgreSQL are running
	@$(SERVICES) status

lint: venv ## ruff: lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv ## ruff: apply fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: venv ## mypy (strict for worker/)
	$(BIN)/mypy

unit: venv ## unit tests only; no services needed
	$(BIN)/pytest tests/unit

# deploy/local/browser.sh returns at once when chromium and pdftotext are on PATH.
browser: ## install Debian's chromium and poppler-utils for the browser tests, if missing (root)
	@deploy/local/browser.sh

test: venv lint typecheck browser ## the whole suite: lint, types, then every test against real services
	@$(call with_services,$(BIN)/pytest)

screenshots: venv browser ## refresh docs/dashboard.png and docs/pattern-page.png from the browser tests
	@$(call with_services,ROI_UPDATE_DOC_SCREENSHOTS=1 $(BIN)/pytest tests/browser -k screenshot)

# `make test` runs the fault-injection scenarios in a reduced form; SOAK=1 selects the full size.
soak: venv ## the fault-injection suite in full: 50k-event streams, repeated faults (~15 min; ARGS=...)
	@$(call with_services,SOAK=1 $(BIN)/pytest -m fault $(ARGS))

# Not part of `test`: pytest never collects tests/benchmarks/ (no test_ modules there).
# Prints the table, the ratio table of issue 18 and the machine's calibration, then the targets.
bench: venv ## benchmark against real services: table, ratios, targets; append to docs/benchmarks.md (ARGS="--events 100000 ...")
	@$(call with_services,$(BIN)/python -m tests.benchmarks.run_bench $(ARGS))

bench-api: venv ## read API benchmark: req/s and p95 with 500 patterns, 1M executions (ARGS=...)
	@$(call with_services,$(BIN)/python -m tests.benchmarks.api_bench $(ARGS))

# No services needed: `report` is measured too when ROI_DATABASE_URL names a migrated database.
bench-startup: venv ## start-up time of roi-worker --help, --version and report (ARGS="--runs 50")
	$(BIN)/python -m tests.benchmarks.startup $(ARGS)

schemas: venv ## regenerate schemas/ (event contract, report, OpenAPI); a test fails when they drift
	$(BIN)/roi-worker schema --write schemas

migrate: venv ## apply the migrations to the local (or configured) database
	@$(call with_services,$(BIN)/roi-worker migrate)

demo: venv ## run the worker on a sample stream, print the ROI per pattern (DEMO_SECONDS=N: stop after N s)
	@$(call with_services,$(BIN)/roi-worker migrate && $(BIN)/roi-worker demo)

# POST needs a bearer token: ROI_API_WRITE_TOKENS when set, else the one in .local/api-token
# (made once, readable by you only; `make demo` makes a new one per run).
api: venv ## serve the read API on 127.0.0.1:ROI_API_PORT (8000) against the local services
	@if [ -z "$$ROI_API_WRITE_TOKENS" ] && [ ! -s .local/api-token ]; then \
		mkdir -p .local && (umask 077 && $(BIN)/python -c 'import secrets; print(secrets.token_hex(32))' > .local/api-token); \
	fi
	@[ -n "$$ROI_API_WRITE_TOKENS" ] || echo 'POST with: curl -H "Authorization: Bearer $$(cat .local/api-token)" -H "Content-Type: application/json" ...'
	@$(call with_services,ROI_API_HOST=127.0.0.1 ROI_API_WRITE_TOKENS="$${ROI_API_WRITE_TOKENS:-$$(cat .local/api-token)}" $(BIN)/roi-worker api)

clean: ## remove the virtualenv and tool caches (the services and their data stay)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
