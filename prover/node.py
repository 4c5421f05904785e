"""Moved to :mod:`prover.runner` (issue 12: named as the challenger's); kept only until
``prover/cli.py`` and ``demo/actors.py`` import from there."""

from prover.runner import Node, build_node, run_node

__all__ = ["Node", "build_node", "run_node"]
