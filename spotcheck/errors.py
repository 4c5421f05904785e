"""One exception root for Spotcheck; each subclass also inherits the builtin it specialises.

A re-run that disagrees is a verdict, not an exception: exceptions mean "could not decide".
"""

from __future__ import annotations


class SpotcheckError(Exception):
    """Root of every error Spotcheck raises on purpose."""


class ConfigError(SpotcheckError, ValueError):
    """A configuration value, file or option is invalid."""


class EncodingError(SpotcheckError, ValueError):
    """A value cannot be encoded canonically (NaN, infinity, out of range, wrong shape)."""


class ModelError(SpotcheckError, ValueError):
    """An ONNX model is unreadable, unsupported or does not match the registered one."""


class InputError(SpotcheckError, ValueError):
    """An inference input has the wrong shape, length or dtype, or holds NaN or infinity."""


class ToolchainError(SpotcheckError, RuntimeError):
    """A required external tool (solc shim, anvil, ezkl) is missing or failed."""


class ProofError(SpotcheckError, RuntimeError):
    """ezkl could not produce or verify a proof."""


class ChainError(SpotcheckError, RuntimeError):
    """A chain call failed or the chain is in a state that forbids the action."""


class StateError(SpotcheckError, RuntimeError):
    """Persisted local state is inconsistent with the chain or with itself."""
