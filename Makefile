# Two commands on a fresh clone: `make dev` (run the service) and `make test` (run the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint test-unit test-integration install clean

$(STAMP): setup.cfg setup.py pyproject.toml flts_streams/_wire.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/flts dev

test: $(STAMP) lint
	$(BIN)/python -m pytest -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

test-integration: $(STAMP)
	$(BIN)/python -m pytest -m integration

clean:
	rm -rf var build dist *.egg-info
