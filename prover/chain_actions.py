"""Moved to :mod:`prover.chain_io` (issue 12: named as the challenger's); kept only until
``prover/cli.py`` imports from there."""

from prover.chain_io import NodeChain

__all__ = ["NodeChain"]
