# Two commands do everything on a fresh clone with Python 3.11: `make demo` and `make test`.
# Each creates .venv from uv.lock the first time (and again when the lock changes).
# `make lock` updates the lock; `make dist` builds the release Terraform installs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV     := $(BIN)/uv
export UV_NO_PROGRESS := 1
# Terraform is used offline only (fmt, and provider-free tests): no CLI config, no checkpoint.
export TF_CLI_CONFIG_FILE := /dev/null
export CHECKPOINT_DISABLE := 1

.PHONY: demo test lint format unit integration infra boot-test bench fuzz venv clean lock dist floors checkov-venv

# .venv is uv.lock exactly: the agent and the test kit editable, every extra, the dev group.
# uv itself comes from the lock (requirements/installer.txt, hashed) the first time; after
# that `uv sync` keeps it at the locked version like every other package.
$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/installer.txt

$(STAMP): $(UV) uv.lock pyproject.toml testkit/pyproject.toml
	$(UV) sync --quiet --locked --all-packages --all-extras --python $(BIN)/python
	touch $(STAMP)

venv: $(STAMP) checkov-venv

# checkov pins bc-python-hcl2, which installs a second `hcl2` package over python-hcl2's:
# it gets a venv of its own, from its own hashed lock.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed: $(UV) requirements/checkov.txt
	$(UV) venv --quiet --allow-existing --python $(BIN)/python $(CHECKOV_VENV)
	$(UV) pip sync --quiet --require-hashes --python $(CHECKOV_VENV)/bin/python requirements/checkov.txt
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed

## Update uv.lock to the newest releases pyproject.toml admits, then its exports under
## requirements/ (hashed; the wheelhouse and Terraform read them) and checkov's own lock.
## `make lock UPGRADE=` re-resolves only what a pyproject.toml change needs.
UPGRADE ?= --upgrade
lock: $(UV)
	$(UV) lock $(UPGRADE)
	$(BIN)/python tools/lockfiles.py --uv $(UV) $(UPGRADE)

## The release: dist/ gets the wheel, the wheelhouse archive and SHA256SUMS.
## `make dist EXTRAS=vision,gcs` puts the extras' wheels in the wheelhouse too.
EXTRAS ?=
dist: $(STAMP)
	$(BIN)/python tools/dist.py --uv $(UV) --extras '$(EXTRAS)'

## The unit tests on the oldest versions pyproject.toml admits (every direct dependency at
## its floor, uv's lowest-direct resolution), in a venv of their own.
FLOORS_VENV := .venv-floors
floors: $(UV)
	rm -rf $(FLOORS_VENV)
	$(UV) venv --quiet --python $(BIN)/python $(FLOORS_VENV)
	$(UV) pip install --quiet --python $(FLOORS_VENV)/bin/python --resolution lowest-direct \
	    -e '.[vision,gcs]' -e ./testkit --group dev
	$(UV) pip list --python $(FLOORS_VENV)/bin/python
	$(FLOORS_VENV)/bin/pytest -q -p no:cacheprovider tests/unit

## The whole lifecycle on local emulators: boot report, job, manifest, end report, stop.
demo: $(STAMP)
	$(BIN)/notraining-agent demo

## Lint, then every test (unit, integration against the emulators, infra checks).
test: lint checkov-venv
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

infra: $(STAMP) checkov-venv
	$(BIN)/pytest tests/infra

## Boot the recipe for real: Debian guests under qemu (root; images cached in
## /var/cache/notraining-agent-boot), one boot per scenario of tests/boot. See docs/boot-test.md.
## BOOT_ARGS picks scenarios, e.g. BOOT_ARGS="--only 1" (what CI boots) or "--jobs 2".
BOOT_ARGS ?= --jobs 2
boot-test: $(STAMP)
	$(BIN)/python -m tests.boot $(BOOT_ARGS)

## Benchmarks (not tests, not in CI). legacy.py needs ../shared/peers/seed-django next to
## the repository and writes its table into bench/RESULTS.md; the others are recorded by hand.
bench: $(STAMP)
	$(BIN)/python bench/legacy.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/processor.py
	$(BIN)/python bench/cost_guard.py
	$(BIN)/python bench/body_attacks.py

## Coverage-guided fuzzing of the archive extractor, bounded in time (not run in CI).
FUZZ_SECONDS ?= 120
fuzz: $(STAMP)
	$(UV) pip install --quiet --python $(BIN)/python atheris
	$(BIN)/python bench/fuzz_archive.py -max_total_time=$(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(FLOORS_VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .demo
