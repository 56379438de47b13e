# airloop: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PY ?= python3.11
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
RUN := $(VENV)/bin

export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export AIRFLOW__CORE__LOAD_EXAMPLES := False

.PHONY: install demo up watch down status lint test test-fast system clean

install: $(VENV)/.synced          ## the locked environment (uv.lock), installed once

# --compile-bytecode: this machine's environment sets PYTHONDONTWRITEBYTECODE=1, so without
# .pyc files written at install every process compiled what it imported from source
# (`import airflow.sdk` 5.9 s instead of 2.8 s) - every Airflow component, task and CLI call.
$(VENV)/.synced: pyproject.toml uv.lock Makefile
	@command -v uv >/dev/null 2>&1 || [ -x "$(UV)" ] || $(PY) -m pip install --quiet --user uv || $(PY) -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode --python $(PY)
	@touch $@

demo: install                      ## start Airflow + MLflow and replay the demo (README command 1)
	$(RUN)/airloop demo

up: install
	$(RUN)/airloop up

watch: install
	$(RUN)/airloop up --watch

down:
	$(RUN)/airloop down

status:
	$(RUN)/airloop status

lint: install
	$(RUN)/ruff check .
	$(RUN)/ruff format --check .
	$(RUN)/mypy

# Tests without an Airflow stack run on every core (pytest-xdist; each worker has its own MLflow
# server and flights lake, and a test module stays on one worker so its module fixtures are
# built once). The system tests start whole Airflow stacks and run one after another.
WORKERS ?= 2
XDIST := -n $(WORKERS) --dist loadfile --durations=15

test: lint                         ## everything CI runs (README command 2)
	$(RUN)/python -m pytest -m "not system" $(XDIST)
	$(RUN)/python -m pytest -m system --durations=15

test-fast: install                 ## unit, operator and DAG tests: no Airflow stack, no slow real-parts test
	$(RUN)/python -m pytest -m "not system and not slow" $(XDIST)

system: install
	$(RUN)/python -m pytest -m system --durations=15

clean:
	rm -rf .airloop .pytest_cache .mypy_cache .ruff_cache
