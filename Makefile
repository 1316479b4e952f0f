# leadscore: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/synthetic
DEMO_LEADS ?= 20000
PYTEST_ARGS ?=

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

.PHONY: install
install: $(STAMP) ## Create .venv (Python 3.11) and install leadscore with its dev extras

.PHONY: run
run: $(STAMP) ## The main job end to end on synthetic data: synth, features, train
	$(BIN)/leadscore synth --leads $(DEMO_LEADS) --out $(DEMO_DIR) --seed 7
	$(BIN)/leadscore features --data $(DEMO_DIR) --out data/features.parquet
	$(BIN)/leadscore train --data $(DEMO_DIR) --metrics-out models/synthetic-metrics.json

.PHONY: test
test: $(STAMP) ## Lint, then the whole test suite (slow tests included)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: $(STAMP) ## The test suite without the tests marked slow
	$(BIN)/pytest -n 2 -m "not slow" $(PYTEST_ARGS)

.PHONY: lint
lint: $(STAMP) ## Ruff lint and format in place
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

.PHONY: clean
clean: ## Remove the venv, caches and generated demo data
	rm -rf $(VENV) .pytest_cache .ruff_cache $(DEMO_DIR) data/features.parquet
