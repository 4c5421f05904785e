"""Shared test set-up: the npm anvil on PATH for ape-foundry, slow-test gating."""

from __future__ import annotations

import os

import pytest

from spotcheck.toolchain import ensure_anvil_on_path, ensure_full_compile

ensure_anvil_on_path()
ensure_full_compile()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SPOTCHECK_SLOW") == "1":
        return
    skip_slow = pytest.mark.skip(reason="slow: skipped by `make test-fast`; `make test` runs it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
