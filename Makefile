# tierspayant — `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: the runtime alone (enough for `make demo`), then the development tools.
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed-dev
# axe-core for the portals' accessibility sweep, pinned by tools/a11y/package-lock.json
A11Y := tools/a11y
AXE := $(A11Y)/node_modules/axe-core/axe.min.js

.DEFAULT_GOAL := help
.PHONY: help install demo serve test lint typecheck unit integration security a11y a11y-deps bench bench-day bench-national clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(RUNTIME_STAMP): pyproject.toml
	@echo ">>> Installation de tierspayant et de ses seules dépendances d'exécution dans $(VENV) (les outils de développement ne servent pas à la démo : make test les ajoute)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	@echo ">>> Installation des outils de développement dans $(VENV) (pytest, ruff, mypy, Playwright… : make test en a besoin)"
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the platform with its development tools

# npm keeps the tarball's old file times: touched, so that make sees it newer than the lock.
$(AXE): $(A11Y)/package-lock.json
	cd $(A11Y) && npm ci --no-audit --no-fund --loglevel=error
	touch $(AXE)

a11y-deps: $(AXE) ## Install axe-core (pinned in tools/a11y) for the accessibility sweep

demo: $(RUNTIME_STAMP) ## Run the platform with demo data on the embedded default (SQLite) at http://127.0.0.1:8000
	$(BIN)/tierspayant demo

serve: $(RUNTIME_STAMP) ## Serve the API and portals on the configured database, without creating data
	$(BIN)/tierspayant serve

lint: $(STAMP) ## ruff lint + format check, import-linter layer contracts
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP) ## mypy --strict on src, tests and bench
	$(BIN)/mypy

test: lint typecheck $(AXE) ## Everything CI checks: lint, types, and the whole test suite (SQLite, PostgreSQL, Redis, browser)
	$(BIN)/pytest

unit: $(STAMP) ## Domain and security unit tests only
	$(BIN)/pytest tests/unit

integration: $(STAMP) ## Integration tests on SQLite and PostgreSQL
	$(BIN)/pytest tests/integration

security: $(STAMP) ## The attack replay and the other security tests
	$(BIN)/pytest tests/security

a11y: $(STAMP) $(AXE) ## Accessibility sweep of every portal page in all its states (axe-core in Chromium)
	TIERSPAYANT_A11Y_FULL=1 $(BIN)/pytest -p no:randomly tests/browser/test_accessibility.py

bench: $(STAMP) ## Benchmarks with their same-run baselines (JSON lines, then one table of ratios)
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -qq wrk
	$(BIN)/python -m bench.run_all

DAY_LINES ?= 200000
bench-day: $(STAMP) ## A day of volume on PostgreSQL: lines adjudicated by 2 workers, then the payment run (DAY_LINES=2000000 for the issue's day; not CI)
	$(BIN)/python -m bench.bench_day --lines $(DAY_LINES)

NATIONAL_DIR ?= var/national
bench-national: $(STAMP) ## The national runs: 84 insurers, 20 million people on PostgreSQL, then the rights check (long; not CI)
	@command -v wrk >/dev/null 2>&1 || apt-get install -y -qq wrk
	$(BIN)/python -m bench.bench_national --data $(NATIONAL_DIR)/small --people 100000
	$(BIN)/python -m bench.bench_national --data $(NATIONAL_DIR)/full --people 20000000 --keep

clean: ## Remove the virtualenv, the local data directory and axe-core's node_modules
	rm -rf $(VENV) var $(A11Y)/node_modules

.PHONY: release-check
release-check: $(STAMP) ## Check that the version, CHANGELOG.md and the migration head agree (docs/release.md)
	$(BIN)/python -m tests.support.release_check
