# Bastion: `make run` starts the platform, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
# Where the Stripe Node SDK of the contract tests is installed (tests/sdk).
NODE_SDK := tests/sdk/node

.PHONY: run test test-fast chaos lint bench lock clean system-packages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip --disable-pip-version-check --quiet install --require-hashes --no-deps -r requirements/build.txt

$(VENV)/.installed-main: requirements/main.txt pyproject.toml | $(BIN)/python
	$(PIP) install --require-hashes --no-deps -r requirements/main.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-test
	@touch $@

$(VENV)/.installed-test: requirements/test.txt pyproject.toml | $(BIN)/python
	$(PIP) install --require-hashes --no-deps -r requirements/test.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	@touch $@ $(VENV)/.installed-main

run: $(VENV)/.installed-main
	$(BIN)/bastion serve --demo $(ARGS)

test: $(VENV)/.installed-test system-packages $(NODE_SDK)/node_modules/.installed
	$(BIN)/python -m pytest

# The quick loop: no browser, no process kills, no `bastion` command processes.
test-fast: $(VENV)/.installed-test system-packages
	$(BIN)/python -m pytest -m "not slow and not processes"

# The long run of the sandbox acquirer's seeded chaos (`make test` runs 200 payments of it):
# every payment converges, none is charged twice (docs/payments.md).
chaos: $(VENV)/.installed-test system-packages
	BASTION_CHAOS_RUNS=$${BASTION_CHAOS_RUNS:-10000} $(BIN)/python -m pytest -q --timeout 3600 tests/payments/test_chaos.py

# The official Stripe Node SDK that tests/sdk drives against a live server, from its lock (which
# names no registry: npm asks the one it is configured with). No install scripts run.
$(NODE_SDK)/node_modules/.installed: $(NODE_SDK)/package-lock.json $(NODE_SDK)/package.json | system-packages
	cd $(NODE_SDK) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

# Chromium for the browser tests, SoftHSM2 for the PKCS#11 keyring, Redis for the velocity
# store's tests and Node.js with npm for the Stripe Node SDK's, from Debian.
system-packages:
	@scripts/system-packages

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# The peers the benchmarks measure beside Bastion (django-hordak): in the bench environment only.
$(VENV)/.installed-bench: requirements/bench.txt $(VENV)/.installed-test
	$(PIP) install --require-hashes --no-deps -r requirements/bench.txt
	@touch $@

bench: $(VENV)/.installed-bench system-packages
	$(BIN)/python bench/api.py
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/vault.py
	$(BIN)/python bench/payments.py
	$(BIN)/python bench/risk.py

# Re-lock after changing dependencies in pyproject.toml (needs pip-tools in the venv).
lock: | $(BIN)/python
	$(PIP) install pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe -o requirements/build.txt requirements/build.in
	$(BIN)/pip-compile --quiet --generate-hashes --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe -o requirements/main.txt pyproject.toml
	$(BIN)/pip-compile --quiet --generate-hashes --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe --extra test -o requirements/test.txt pyproject.toml
	$(BIN)/pip-compile --quiet --generate-hashes --no-emit-index-url --no-emit-find-links --strip-extras --allow-unsafe -o requirements/bench.txt requirements/bench.in

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(NODE_SDK)/node_modules
