# Two commands do all set-up on a fresh machine:
#   make demo   - the whole pipeline on this machine (SQLite, local fleet, in-process queue, direct scrape)
#   make test   - installs what the tests need (Prometheus, ...), checks Redis/PostgreSQL, runs every test

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_ARGS ?=
PYTEST_ARGS ?=
POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
REDIS_TEST_URL ?= redis://127.0.0.1:6379/13

.PHONY: demo test test-fast services bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/deployer demo --report demo-report.json $(DEMO_ARGS)

services:
	./scripts/ensure-services.sh

test: $(STAMP) services
	DEPLOYER_STRICT=1 SAMPLE_APP_TEST_POSTGRES_URL=$(POSTGRES_URL) DEPLOYER_TEST_POSTGRES_URL=$(POSTGRES_URL) \
	DEPLOYER_TEST_REDIS_URL=$(REDIS_TEST_URL) $(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

bench: $(STAMP) services
	$(PY) bench/rollout.py
	$(PY) bench/judge_accuracy.py
	$(PY) bench/workers.py --redis-url $(REDIS_TEST_URL)
	$(PY) bench/dashboard.py

clean:
	rm -rf $(VENV) .demo .deployer demo-report.json .pytest_cache .hypothesis
