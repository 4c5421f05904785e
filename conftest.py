"""Root conftest: loads the shared fixture plugins (each owned by the package it exercises)."""

import importlib.util

# chain: deployment fixtures (contracts); zk: cached ezkl artifacts for small test models.
pytest_plugins = [
    name
    for name in ("tests.fixtures.chain", "tests.fixtures.zk")
    if importlib.util.find_spec(name) is not None
]
