# The two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
export AE_DATA_DIR ?= $(abspath ../shared/data)

.PHONY: setup run test lint train-all

$(BIN)/python:
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch and torchvision are pinned in pyproject.toml; pip installs them like any dependency.
setup: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'

# Serve the shipped checkpoints on http://127.0.0.1:8000
run: setup
	$(BIN)/ae-serve

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

train-all:
	$(BIN)/ae-train --all
