"""The CLI's one line for an Ape error (issue 13): a revert's custom error by name, in each
shape it reaches the CLI (raw data, anvil's ``custom error 0x...`` text), never the raw hex."""

from __future__ import annotations

from typing import Any

import pytest
from ape.exceptions import ContractLogicError

from spotcheck.cli import describe_ape_error


@pytest.fixture(autouse=True, scope="module")
def _compiled(project: Any) -> None:
    """describe_revert reads the compiled contract types and never compiles: compile first."""
    project.load_contracts()


NODE = "11" * 20
#: NodeUnbonding(address node): its selector, then the address as one ABI word
UNBONDING = "51805901" + "00" * 12 + NODE


@pytest.mark.parametrize(
    "text",
    [
        "0x" + UNBONDING,  # Ape: the undecoded revert data as the message
        f"execution reverted: custom error 0x51805901: {'00' * 12}{NODE}",  # anvil's text
    ],
)
def test_describeApeError_namesTheCustomError(text: str) -> None:
    line = describe_ape_error(ContractLogicError(text))
    assert line.startswith("NodeUnbonding(node=0x"), line
    assert NODE in line.lower()
    assert "\n" not in line


def test_describeApeError_notARevert_isTypeAndFirstLine() -> None:
    err = ConnectionError("connection refused\n  long trace")
    assert describe_ape_error(err) == "ConnectionError: connection refused"
