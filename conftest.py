"""Root conftest: loads the shared fixture plugins (each owned by the package it exercises)."""

# chain: deployment fixtures (contracts); zk: cached ezkl artifacts for small test models.
pytest_plugins = ["tests.fixtures.chain", "tests.fixtures.zk"]
