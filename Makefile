# Two commands on a fresh clone: `make dev` (run the service) and `make test` (run the suite).
# Python 3.11 (setup.cfg's python_requires): python3.11 when on PATH, else python3 if that is 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# On Linux PyPI's torch is the CUDA build (GBs of GPU libraries): take the CPU build from PyTorch's index.
# A GPU user sets TORCH_INDEX to a CUDA index (e.g. https://download.pytorch.org/whl/cu126) or to nothing (PyPI).
TORCH_INDEX ?= $(if $(filter Linux,$(shell uname -s)),https://download.pytorch.org/whl/cpu,)
TORCH := torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint fmt test-unit test-integration install clean python-check fuzz-body-parser

$(STAMP): setup.cfg setup.py pyproject.toml flts_streams/serving/_native_body.c flts_streams/forecasting/_records_json.c
	@$(MAKE) --no-print-directory python-check
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# --no-deps: only torch itself is looked up on that index (its dependencies come from PyPI with the
	# project), so an index that cannot be reached costs one lookup, not one per dependency.
	$(BIN)/pip install -q --no-deps $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) '$(TORCH)'
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

python-check:
	@test "$(PY_VERSION)" = 3.11 || { echo "flts-streams needs Python 3.11; $(or $(PYTHON),no python3) is $(or $(PY_VERSION),not runnable). Install it, or run: make PYTHON=/path/to/python3.11 dev (or test)"; exit 1; }

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/flts dev

# The suite in PYTEST_WORKERS processes (0: one process). Most of an integration test's time is waiting
# (sessions, outages, rebalances), so two processes take ~10 minutes where one took ~17-20 on 2 cores;
# worksteal hands the long tests out as processes free up. The 15 slowest tests close the report.
PYTEST_WORKERS ?= 2
PYTEST_XDIST = -n $(PYTEST_WORKERS) --dist worksteal --durations=15

test: $(STAMP) lint
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_XDIST)

# Lint, format and type checks (config: pyproject.toml); `make fmt` applies the formatter and import order.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --select I --fix .
	$(BIN)/ruff format .

test-unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) -m "not integration"

test-integration: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) -m integration

fuzz-body-parser: $(STAMP)  # the native parser built with ASan+UBSan, fed mutated bodies for FUZZ_SECONDS (default 120)
	$(BIN)/python -m tests.fuzz_native_body --seconds $(or $(FUZZ_SECONDS),120)

clean:
	rm -rf var build dist *.egg-info
