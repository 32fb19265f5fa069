# Waymark — `make help` lists the targets.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The test suite runs against PostgreSQL and Redis (the local services by
# default). It empties the Redis database it is given, hence /15.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/waymark
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
# Waymark refuses its public development key unless DEBUG is on: the targets
# below are for a development machine, so they turn DEBUG on (a DEBUG or
# SECRET_KEY of your own wins); tests and benchmarks get a key of their own.
DEV := DEBUG=$${DEBUG:-true}
TEST_ENV := SECRET_KEY=$${SECRET_KEY:-waymark-tests-only-secret-key-not-for-production}

.DEFAULT_GOAL := help
.PHONY: help install run test lint format check migrate demo worker scheduler web bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Waymark needs $(PYTHON) on PATH (or set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create the virtualenv and install Waymark with its dev tools

run: $(STAMP) ## Run Waymark locally: SQLite, web + worker + scheduler, demo data, mail sink
	$(DEV) $(BIN)/python manage.py waymark_run

test: $(STAMP) lint chromium ## Lint, run the whole test suite against PostgreSQL and Redis, then on SQLite
	$(TEST_ENV) DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-sqlite

# The embedded default (`make run`) runs on SQLite: the suite again on it.
# The tests that cannot run there are skipped, each saying why
# (tests/conftest.py, tests/databases.py).
PYTEST_SQLITE_ARGS ?= $(PYTEST_ARGS)
.PHONY: test-sqlite
test-sqlite: $(STAMP) ## Run the test suite on SQLite, the embedded default
	$(TEST_ENV) DATABASE_URL=sqlite:///$(CURDIR)/var/test.sqlite3 REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/pytest $(PYTEST_SQLITE_ARGS)

# Playwright cannot download its own browsers everywhere; the browser tests
# drive Debian's Chromium instead.
.PHONY: chromium
chromium: ## Install Debian's Chromium for the browser tests, if missing
	@test -x /usr/bin/chromium || { \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	}

.PHONY: wrk
wrk: ## Install wrk (the API benchmark's load generator), if missing
	@command -v wrk >/dev/null || { \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk; \
	}

lint: $(STAMP) ## ruff: lint and check formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check: $(STAMP) ## Django's system checks, and a check that no migration is missing
	$(DEV) $(BIN)/python manage.py check
	$(DEV) $(BIN)/python manage.py makemigrations --check --dry-run

migrate: $(STAMP) ## Apply migrations to the configured database
	$(DEV) $(BIN)/python manage.py migrate

web: $(STAMP) ## Run only the development web server
	$(DEV) $(BIN)/python manage.py runserver

worker: $(STAMP) ## Run one rq worker (no fork per job)
	$(DEV) $(BIN)/python manage.py rqworker default --worker-class rq.worker.SimpleWorker

scheduler: $(STAMP) ## Run the journey scheduler
	$(DEV) $(BIN)/python manage.py run_scheduler

bench: $(STAMP) wrk ## Run the benchmarks in bench/ (PostgreSQL; prints figures; ARGS="--..." for options)
	$(TEST_ENV) DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python -m bench $(BENCH) $(ARGS)

clean: ## Remove the virtualenv and local data (var/)
	rm -rf $(VENV) var
