# Two commands do everything on a fresh clone with Python 3.11: `make demo` and `make test`.
# Each creates .venv and installs what it needs the first time (and again when
# pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := dev,vision,gcs
# Terraform is used offline only (fmt, and provider-free tests): no CLI config, no checkpoint.
export TF_CLI_CONFIG_FILE := /dev/null
export CHECKPOINT_DISABLE := 1

.PHONY: demo test lint format unit integration infra boot-test bench fuzz venv clean

$(STAMP): pyproject.toml testkit/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]' -e ./testkit
	touch $(STAMP)

venv: $(STAMP)

## The whole lifecycle on local emulators: boot report, job, manifest, end report, stop.
demo: $(STAMP)
	$(BIN)/notraining-agent demo

## Lint, then every test (unit, integration against the emulators, infra checks).
test: lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p notraining_agent -p notraining_testkit
	terraform fmt -check -recursive terraform

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	terraform fmt -recursive terraform

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

infra: $(STAMP)
	$(BIN)/pytest tests/infra

## Boot the recipe for real: Debian guests under qemu (root; images cached in
## /var/cache/notraining-agent-boot), one boot per scenario of tests/boot. See docs/boot-test.md.
boot-test: $(STAMP)
	$(BIN)/python -m tests.boot

## Benchmarks; results are recorded by hand in bench/RESULTS.md.
bench: $(STAMP)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/processor.py
	$(BIN)/python bench/cost_guard.py

## Coverage-guided fuzzing of the archive extractor, bounded in time (not run in CI).
FUZZ_SECONDS ?= 120
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet atheris
	$(BIN)/python bench/fuzz_archive.py -max_total_time=$(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .demo
