# The two README commands: `make demo` and `make test`. Both set up everything they need.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup demo test test-all lint clean-cache

setup:
	@./scripts/bootstrap.sh

demo: setup
	$(BIN)/spotcheck demo

test: setup
	@set +e; $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; rc=0; fi; exit $$rc

test-all: setup
	SPOTCHECK_SLOW=1 $(MAKE) test

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean-cache:
	rm -rf .spotcheck-cache .build
