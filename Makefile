# `make demo` and `make test` each set up what they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.engram-installed
DEMO_HOME ?= $(CURDIR)/.engram-demo
ENGRAM := ENGRAM_HOME=$(DEMO_HOME) $(BIN)/engram

# Models load from installed packages only; nothing is downloaded at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup lint typecheck test demo loadtest clean

$(STAMP): pyproject.toml
	bash infra/install-system.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch from this machine's wheel, before anything can pull a CUDA one.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy core engram forget pipelines memory ranking serving loadtest

test: lint typecheck
	$(BIN)/pytest

demo: setup
	rm -rf $(DEMO_HOME)
	$(ENGRAM) generate $(DEMO_HOME)/data --preset demo --end now
	$(ENGRAM) ingest $(DEMO_HOME)/data/signals.jsonl --catalog $(DEMO_HOME)/data/catalog.jsonl --memories
	$(ENGRAM) materialize
	$(ENGRAM) features show --sample
	$(ENGRAM) memories list --sample --facts
	$(ENGRAM) memories search --sample "where does the user live and what do they like"
	$(ENGRAM) train --max-users 300
	$(ENGRAM) rank --sample --k 10
	$(ENGRAM) services stop

# make loadtest LOADTEST_ARGS="--duration 2m --rate 150"; LOADTEST_ARGS=--soak for the 10-minute
# soak. Starts what it needs on embedded defaults; the reports land in the run's output directory.
LOADTEST_ARGS ?=
loadtest: setup
	$(ENGRAM) loadtest $(LOADTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
