"""The foundation works end to end: OpenZeppelin compiles through the shim and runs on anvil."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.chain


def test_openzeppelin_token_deploysAndTransfers_onAnvil(project, accounts, chain) -> None:
    assert chain.provider.name == "foundry", "tests must run on anvil by default"
    owner, other = accounts[0], accounts[1]
    token = owner.deploy(project.TestToken)
    token.mint(owner, 1000, sender=owner)
    token.transfer(other, 250, sender=owner)
    assert token.balanceOf(owner) == 750
    assert token.balanceOf(other) == 250
    assert token.symbol() == "SPOT"
