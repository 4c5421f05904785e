"""`spotcheck contracts mint` (issue 13): an account without ETH is told so before anything is
sent, and a refused mint names the revert instead of guessing "is the token a TestToken?"."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from spotcheck.chain import TOKEN
from spotcheck.deploy import mint_tokens
from spotcheck.errors import ChainError, ConfigError


@pytest.fixture(autouse=True, scope="module")
def _compiled(project: Any) -> None:
    """describe_revert reads the compiled contract types and never compiles: compile first."""
    project.load_contracts()


NODE = "11" * 20


class Token:
    def __init__(self, refuse: Exception | None = None) -> None:
        self.refuse = refuse
        self.minted: list[tuple[str, int]] = []

    def mint(self, to: str, amount: int, sender: Any) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.minted.append((to, amount))

    def balanceOf(self, who: str) -> int:
        return sum(amount for to, amount in self.minted if to == who)


def test_mint_withoutEth_isOneLine_andSendsNothing() -> None:
    token = Token()
    broke = SimpleNamespace(address="0x" + "22" * 20, balance=0)
    with pytest.raises(ConfigError, match="holds no ETH to pay for gas") as err:
        mint_tokens(token, broke, broke.address, 5)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)
    assert token.minted == []


def test_mint_refused_namesTheDecodedRevert() -> None:
    refusal = RuntimeError(f"execution reverted: custom error 0x51805901: {'00' * 12}{NODE}")
    rich = SimpleNamespace(address="0x" + "22" * 20, balance=10**18)
    with pytest.raises(ChainError) as err:
        mint_tokens(Token(refusal), rich, rich.address, 5)  # type: ignore[arg-type]
    assert str(err.value).startswith("mint failed: NodeUnbonding(node=0x")
    assert "TestToken" not in str(err.value)


def test_mint_ok_returnsWholeTokens() -> None:
    token = Token()
    rich = SimpleNamespace(address="0x" + "22" * 20, balance=1)
    assert mint_tokens(token, rich, "0xabc", 3) == 3  # type: ignore[arg-type]
    assert token.minted == [("0xabc", 3 * TOKEN)]
    assert mint_tokens(token, rich, rich.address, 2) == 2  # type: ignore[arg-type]
