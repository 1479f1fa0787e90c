# skimbench set-up: `make quickstart` (the main job) and `make test` (the whole suite).
# Both create .venv with python3 if missing, install what they need, and are safe to rerun.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SPEC   ?= experiments/quickstart.yaml

.PHONY: install install-dev browser postgres quickstart lint test test-fast benchmarks gpu-check clean-results help

help:
	@echo "make quickstart   install, generate the built-in benchmark, run $(SPEC), write the report"
	@echo "make test         install with dev extras, run ruff, then the whole test suite"
	@echo "make lint         ruff check and ruff format --check"
	@echo "make benchmarks   run every benchmark in benchmarks/ (prints ratios against references)"
	@echo "make gpu-check    on a CUDA machine: gpu tests, streaming extraction, a gpus: 0.5 grid, loader throughput"

$(BIN)/python:
	@echo ">> creating virtual environment $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch is installed first and pinned: an unpinned torch would pull several GB of CUDA packages.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	@echo ">> installing torch==2.13.0 and skimbench (pinned by constraints.txt)"
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	@echo ">> installing dev extras (pytest, selenium)"
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Headless Chromium for the HTML report test (Debian packages); skipped when apt is unavailable.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then \
	  echo ">> chromium present: $$(chromium --version 2>/dev/null)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo ">> installing Debian chromium and chromium-driver for the HTML report test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	    || echo ">> chromium install failed: the HTML browser test will be skipped"; \
	else echo ">> no chromium and no root apt: the HTML browser test will be skipped"; fi

# PostgreSQL for the tracking-server test (Debian's postgresql); the test starts and stops its own
# instance on 127.0.0.1 and is skipped when PostgreSQL is missing. Where the install starts Debian's
# own cluster (a machine with systemd), it is stopped again: nothing is left running for the test.
postgres:
	@if command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
	  echo ">> postgresql present"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo ">> installing Debian postgresql for the tracking-server test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
	    && pg_lsclusters -h | awk '$$4 == "online" {print $$1, $$2}' \
	       | while read version cluster; do pg_ctlcluster "$$version" "$$cluster" stop; done) \
	    || echo ">> postgresql install failed: the PostgreSQL test will be skipped"; \
	else echo ">> no postgresql and no root apt: the PostgreSQL test will be skipped"; fi

quickstart: install
	@echo ">> generating the built-in benchmark (skim-digits, size small) if missing"
	$(BIN)/skimbench data make skim-digits --size small --variant move4
	@echo ">> running $(SPEC) through Ray; runs are logged to results/mlflow.db"
	$(BIN)/skimbench run $(SPEC)

# ruff (configured in pyproject.toml): lint rules and the formatter's check, before any test runs.
lint: install-dev
	@echo ">> ruff check and ruff format --check"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install-dev lint browser postgres
	@echo ">> running the test suite"
	$(BIN)/python -m pytest -q

test-fast: install-dev
	$(BIN)/python -m pytest -q -m "not slow"

benchmarks: install
	@for b in benchmarks/*.py; do echo ">> $$b"; $(BIN)/python $$b || exit 1; done

gpu-check: install-dev
	PYTHON=$(BIN)/python bash benchmarks/gpu_check.sh

clean-results:
	rm -rf results/mlflow.db results/mlartifacts results/stages results/ray
