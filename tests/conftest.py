"""Shared test set-up: the npm anvil on PATH, slow-test gating.

Nothing here needs the Solidity toolchain, so ``tests/unit`` runs without it. Ape's pytest
plugin connects to the default network (anvil, through ape-foundry) in every session, so anvil
goes on PATH here. The folders whose tests compile the contracts (``integration``, ``e2e``,
``property``) make Ape recompile them after a source change in their own ``conftest.py``.
"""

from __future__ import annotations

import os

import pytest

from spotcheck.toolchain import ensure_anvil_on_path

ensure_anvil_on_path()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SPOTCHECK_SLOW") == "1":
        return
    skip_slow = pytest.mark.skip(reason="slow: skipped by `make test-fast`; `make test` runs it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
