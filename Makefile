# The two README commands: `make demo` and `make test`. Both set up everything they need.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast test-stateful lint clean-cache bench-network

setup:
	@./scripts/bootstrap.sh

demo: setup
	$(BIN)/spotcheck demo

# The tests drive a real browser (the dashboard's page test): `setup` then also installs
# Debian's Chromium (scripts/install-chromium.sh, idempotent; needs root or sudo).
test test-fast: export SPOTCHECK_BROWSER := 1

# The whole suite, slow tests included (all 12 zk models, 1,000-input tolerance checks): CI.
test: setup
	@SPOTCHECK_SLOW=1 $(MAKE) --no-print-directory _pytest

# Everything but the tests marked slow, for quick local iterations.
test-fast: setup
	@$(MAKE) --no-print-directory _pytest

# The contracts' stateful property test at full size (50 x 200 = 10,000 rule steps, ~40 min
# on 2 cores): CI runs 1,000 steps inside its 90 minutes; run this before a release.
test-stateful: setup
	@SPOTCHECK_SLOW=1 SPOTCHECK_STATEFUL_EXAMPLES=50 SPOTCHECK_STATEFUL_STEPS=200 \
		$(BIN)/python -m pytest tests/property/test_contract_state_machine.py

_pytest:
	@set +e; $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

# A short network run (a few minutes): 10 real node processes (2 cheating, 1 withholding), 5
# challengers, kill -9 and a reorg; plots and JSON in bench-network-output/. The full soak
# (100,000 jobs, 30 minutes) is `$(BIN)/python benchmarks/bench_network.py` with no flags.
bench-network: setup
	$(BIN)/python benchmarks/bench_network.py --jobs 4000 --duration 150 --out bench-network-output

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean-cache:
	rm -rf .spotcheck-cache .build
