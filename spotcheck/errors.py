"""One exception root for Spotcheck; each subclass also inherits the builtin it specialises.

A re-run that disagrees is a verdict, not an exception: exceptions mean "could not decide".
"""

from __future__ import annotations

import re


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


class RevertError(ChainError):
    """A transaction or call reverted; ``error`` is its custom error's name when known."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


class StartupError(SpotcheckError, RuntimeError):
    """A service refuses to start: its configuration and the chain disagree (one line)."""


#: Reverts that name the node's own stake: no retry can succeed until the operator acts.
STAKE_ERRORS = frozenset({"NodeUnbonding", "InsufficientStake"})


def describe_revert(err: BaseException) -> str:
    """One line for a failed chain call: the custom error by name with its arguments
    (``NodeUnbonding(node=0x...)``) when Ape decoded it or the raw selector matches an error of
    a Spotcheck contract; otherwise the error's type and first line."""
    decoded = _decoded(err)
    if decoded is not None:
        return _format(*decoded)
    return _first_line(err)


def revert_name(err: BaseException) -> str | None:
    """The custom error's name (``"NodeUnbonding"``), or None when it is not one."""
    decoded = _decoded(err)
    return None if decoded is None else decoded[0]


def is_revert(err: BaseException) -> bool:
    """True for a revert (Ape's ContractLogicError, or one already wrapped as RevertError)."""
    if isinstance(err, RevertError):
        return True
    from ape.exceptions import ContractLogicError

    return isinstance(err, ContractLogicError)


def chain_failure(what: str, err: BaseException) -> ChainError:
    """``what: <the decoded custom error>`` as :class:`RevertError` for a revert (its error
    name kept, so a caller can tell a revert no retry fixes), else as :class:`ChainError`:
    how a chain wrapper (the node's, the challenger's) turns a failed call into one line."""
    text = f"{what}: {describe_revert(err)}"
    name = revert_name(err)
    if name is not None or is_revert(err):
        return RevertError(text, name)
    return ChainError(text)


def decode_error_data(data: bytes) -> tuple[str, dict[str, object]] | None:
    """(name, arguments) of revert data against every custom error of the project's compiled
    contracts (Spotcheck's, the token's, the verifiers'); None when no selector matches."""
    entry = _error_selectors().get(bytes(data[:4]))
    if entry is None:
        return None
    name, names, types = entry
    try:
        from eth_abi import decode
        from eth_utils import to_checksum_address

        values = [
            to_checksum_address(v) if t == "address" else v
            for t, v in zip(types, decode(list(types), bytes(data[4:])), strict=True)
        ]
    except Exception:  # malformed arguments: the name alone is still worth showing
        return name, {}
    return name, dict(zip(names, values, strict=True))


def _decoded(err: BaseException) -> tuple[str, dict[str, object]] | None:
    seen: set[int] = set()
    named: str | None = None  # a RevertError's name: used when no cause decodes with arguments
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RevertError) and named is None:
            named = current.error
        abi = getattr(current, "abi", None)
        inputs = getattr(current, "inputs", None)
        if abi is not None and getattr(abi, "type", None) == "error":
            return str(abi.name), dict(inputs or {})
        data = _hex_data(current)
        if data is not None:
            found = decode_error_data(data)
            if found is not None:
                return found
        current = current.__cause__ or current.__context__
    return None if named is None else (named, {})


#: How an RPC (anvil, geth) reports a custom error it did not decode.
_CUSTOM_ERROR = re.compile(r"custom error (?:0x)?([0-9a-fA-F]{8})(?::\s*(?:0x)?([0-9a-fA-F]*))?")


def _hex_data(err: BaseException) -> bytes | None:
    """Raw revert data an undecoded revert carries in its message: ``0x51805901...``, or the
    node's ``custom error 0xa2dc0625: abab...`` (selector, then the arguments)."""
    texts = [
        getattr(err, "data", None),  # web3's ContractCustomError: the revert data, hex
        getattr(err, "revert_message", None),
        getattr(err, "message", None),
        str(err),
    ]
    for text in texts:
        if not isinstance(text, str):
            continue
        found = _CUSTOM_ERROR.search(text)
        if found is not None and len(found.group(2) or "") % 2 == 0:
            return bytes.fromhex(found.group(1) + (found.group(2) or ""))
        first = text.strip().split()[0] if text.strip() else ""
        first = first.rstrip(".,:;'\"").lstrip("'\"")
        if first.startswith("0x") and len(first) >= 10:
            try:
                return bytes.fromhex(first[2:])
            except ValueError:
                continue
    return None


def _format(name: str, args: dict[str, object]) -> str:
    shown = ", ".join(f"{key}={_show(value)}" for key, value in args.items())
    return f"{name}({shown})"


def _show(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    name = type(err).__name__
    return f"{name}: {lines[0]}" if lines else name


_SELECTORS: dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]] | None = None


def _error_selectors() -> dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """selector -> (name, argument names, argument types) over the project's compiled contract
    types (read once; empty when Ape or the compiled project is not available)."""
    global _SELECTORS
    if _SELECTORS is None:
        table: dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
        try:
            from ape import project
            from eth_utils import keccak

            # The compiled types as cached (the manifest): reading them never compiles.
            for contract_type in (project.manifest.contract_types or {}).values():
                for abi in contract_type.abi:
                    if getattr(abi, "type", None) != "error":
                        continue
                    selector = bytes(keccak(text=abi.selector)[:4])
                    names = tuple(str(i.name) for i in abi.inputs)
                    types = tuple(str(i.canonical_type) for i in abi.inputs)
                    table.setdefault(selector, (str(abi.name), names, types))
        except Exception:  # no Ape project here: raw selectors stay raw
            return {}
        _SELECTORS = table
    return _SELECTORS
