# The two commands: `make run` (set up and start web, worker and beat) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup setup-dev lint typecheck pytest bench migrate superuser clean

## Set up the virtualenv with the runtime dependencies, write .env on first use, migrate.
setup: $(VENV)/.base-installed .env migrate

## The same, with the test and lint tools.
setup-dev: $(VENV)/.dev-installed .env migrate

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.base-installed: requirements/base.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -r requirements/base.txt
	touch $@

$(VENV)/.dev-installed: requirements/base.txt requirements/dev.txt | $(VENV)/bin/python
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $@ $(VENV)/.base-installed

# First run only: random SECRET_KEY and TOKEN_ENCRYPTION_KEY, kept out of git.
.env: | $(VENV)/.base-installed
	$(PY) scripts/write_env.py $@

migrate:
	$(PY) manage.py migrate --no-input

## Create the admin account from DJANGO_SUPERUSER_USERNAME/PASSWORD, or say how to.
superuser:
	@$(PY) scripts/ensure_superuser.py

run: setup superuser
	$(PY) manage.py collectstatic --no-input --verbosity 0
	@echo "Starting web on http://$(HOST):$(PORT)/ (admin at /admin/), worker and beat. Ctrl-C stops all three."
	PATH="$(abspath $(BIN)):$$PATH" HOST=$(HOST) $(BIN)/honcho start --port $(PORT) web worker beat

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy .

pytest: setup-dev
	$(BIN)/pytest $(PYTEST_ARGS)

test: setup-dev lint typecheck pytest

bench: setup-dev
	$(PY) manage.py bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var/
