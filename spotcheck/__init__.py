"""Spotcheck core: types, the one encoding/hash rule, chain bindings, config and errors."""

__version__ = "0.1.0"
