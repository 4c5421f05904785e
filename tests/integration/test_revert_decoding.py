"""Reverts decoded by name (``spotcheck.errors.describe_revert``, ``chain_failure``).

Here, not in tests/unit: a raw selector is decoded against the project's compiled contract
types, which this folder's conftest compiles (tests/unit runs without the Solidity toolchain,
and there these decodings have nothing to read)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from spotcheck.errors import ChainError, RevertError, describe_revert, revert_name


@pytest.fixture(autouse=True, scope="module")
def _compiled(project: Any) -> None:
    """describe_revert reads the compiled contract types and never compiles: compile first."""
    project.load_contracts()


# -- reverts decoded by name ----------------------------------------------------------------


def test_describeRevert_decodesARawSelector_againstTheProjectsErrors() -> None:
    """The defect: `commitBatch` retried 23 times with an undecoded 0x51805901... ."""
    node = "11" * 20
    raw = RuntimeError("0x51805901" + "00" * 12 + node)
    wrapped = ChainError("commitBatch would fail")
    wrapped.__cause__ = raw
    assert describe_revert(raw).startswith("NodeUnbonding(node=0x")
    assert node in describe_revert(wrapped).lower()
    assert revert_name(wrapped) == "NodeUnbonding"


def test_describeRevert_keepsArgumentsOfAnApeDecodedError() -> None:
    abi = SimpleNamespace(type="error", name="InsufficientStake")
    err = Exception("InsufficientStake")
    err.abi = abi  # type: ignore[attr-defined]
    err.inputs = {"node": "0xabc", "have": 5, "need": 10}  # type: ignore[attr-defined]
    assert describe_revert(err) == "InsufficientStake(node=0xabc, have=5, need=10)"
    assert describe_revert(RevertError("x", "ZeroAmount")) == "ZeroAmount()"


def test_describeRevert_notARevert_isTypeAndFirstLine() -> None:
    err = ConnectionError("connection refused\ntraceback noise")
    assert describe_revert(err) == "ConnectionError: connection refused"
    assert revert_name(err) is None
    assert describe_revert(RuntimeError("0xdeadbeef00")) == "RuntimeError: 0xdeadbeef00"


def test_describeRevert_decodesTheRpcsCustomErrorText() -> None:
    """anvil's form for a view's revert Ape did not decode (getModel of an unknown id)."""
    err = RuntimeError("execution reverted: custom error 0xa2dc0625: " + "ab" * 32)
    assert describe_revert(err) == f"UnknownModel(modelId=0x{'ab' * 32})"
    assert revert_name(err) == "UnknownModel"


def test_chainFailure_aRevertKeepsItsName_anRpcFailureIsNoRevert() -> None:
    from spotcheck.errors import chain_failure

    revert = chain_failure("commitBatch would fail", RuntimeError("0x51805901" + "00" * 32))
    assert isinstance(revert, RevertError) and revert.error == "NodeUnbonding"
    assert str(revert) == f"commitBatch would fail: NodeUnbonding(node=0x{'00' * 20})"
    outage = chain_failure("reading the stake failed", ConnectionError("refused"))
    assert type(outage) is ChainError
    assert str(outage) == "reading the stake failed: ConnectionError: refused"
