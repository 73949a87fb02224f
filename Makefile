# Every target creates and uses the local virtual environment in .venv;
# nothing relies on packages installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test workers (pytest-xdist): whole modules per worker, the real-time end-to-end
# modules together on one (tests/conftest.py). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

.PHONY: demo demo-bad-fix test lint typecheck contracts check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/selfheal demo

demo-bad-fix: $(STAMP)
	$(BIN)/selfheal demo --scenario bad-fix

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check agent states sequences storage tests benchmarks
	$(BIN)/ruff format --check agent states sequences storage tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy agent states sequences storage tests benchmarks

contracts: $(STAMP)
	$(BIN)/lint-imports

check: lint typecheck contracts test

bench: $(STAMP)
	$(BIN)/python -m benchmarks.agent

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
