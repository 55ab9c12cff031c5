# The commands a newcomer needs: `make run` to serve, `make test` to check everything.
# Each works as the first command on a fresh clone: it creates .venv and installs what it needs,
# and reinstalls only when pyproject.toml changed.
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check -q
CONFIG ?= mlp2-p2

.PHONY: setup run test test-fast lint system-deps train train-all report

$(BIN)/python:
	python3 -m venv $(VENV)

# One stamp per extra: serving needs the runtime only; training adds [train]; the tests [dev].
$(VENV)/.installed-serve: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@
$(VENV)/.installed-train: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[train]'
	@touch $@ $(VENV)/.installed-serve
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.installed-train $(VENV)/.installed-serve

setup: $(VENV)/.installed-dev

# Serve the shipped checkpoints on http://127.0.0.1:8000 (runtime dependencies only).
run: $(VENV)/.installed-serve
	$(BIN)/ae-serve

# Train one configuration (CONFIG=mlp2-p2 by default) or all of them, and regenerate the report.
train: $(VENV)/.installed-train
	$(BIN)/ae-train --config $(CONFIG)
train-all: $(VENV)/.installed-train
	$(BIN)/ae-train --all
report: $(VENV)/.installed-train
	$(BIN)/ae-report

# System packages the tests use (chromium, docker-compose, curl, Fashion-MNIST): installed when
# missing and possible, otherwise one line says what to install.
system-deps:
	@scripts/system-deps.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Everything CI runs: lint, types and the whole suite.
test: system-deps lint
	$(BIN)/pytest

# The quick loop while editing: the tests not marked slow (no live servers, browsers or long training).
test-fast: system-deps $(VENV)/.installed-dev
	$(BIN)/pytest -m "not slow" -q
