"""Audit 9: the challenger's batched leaf requests (``requestLeaves``, one transaction per batch).

Each test was written to fail on the audited code (c2f8db4).

- A9-1: ``requestLeaves`` pulls the bond of every leaf it opens in one transfer, so a challenger
  whose free token balance covers some of a batch's sampled leaves but not all of them had its
  whole transaction reverted (``ERC20InsufficientBalance``) on every tick: not one leaf of the
  withheld batch was requested, and the node's wrong leaves escaped. One ``requestLeaf`` per
  leaf (before the change) opened as many as the balance paid for. The bond cap was applied
  per group; the balance was not.
- A9-2: a sampled leaf of a withheld batch that someone else disputed directly (a dApp or
  challenger holding the leaf's data, or the node's second address) has no leaf request, so
  ``requestLeaves`` skips it without a trace: the row went ``sent``, then back to ``planned``
  (no request on chain: "our transaction did not land"), and a new mined ``requestLeaves``
  transaction went out every other tick until the window closed, where the row ended
  ``missed`` (an error line, and a failed line of the soak's verdict) though the leaf was
  claimed all along.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from challenger.chain_io import DisputeView
from challenger.store import LeafRequestState
from spotcheck.chain import DisputeStatus, LeafRequestStatus, TxResult
from spotcheck.encoding import batch_leaf_key
from spotcheck.errors import ChainError
from tests.unit.test_challenger_fetch import DEADLINE, tick_until
from tests.unit.test_challenger_leaf_requests import BATCH, GIVE_UP, make, requests_sent, setup
from tests.unit.test_challenger_service import BOND, OTHER, PROOF_WINDOW, FakeChain


class ShortOfTokens(FakeChain):
    """The challenger's free token balance pays for ``tokens // BOND`` bonds: a requestLeaves
    whose opened leaves cost more reverts as a whole (``DisputeManager._pull`` after the loop:
    the token's ``ERC20InsufficientBalance``), nothing opened, nothing pulled."""

    tokens: int = 2 * BOND

    def balance(self) -> int:
        return self.tokens

    def request_leaves(
        self, batch_id: int, indices: Sequence[int], root: bytes, bond_each: int
    ) -> TxResult:
        fresh = {
            i
            for i in indices
            if batch_leaf_key(batch_id, i) not in self.leaf_requests
            and batch_leaf_key(batch_id, i) not in self.disputes
        }
        need = len(fresh) * bond_each
        if need > self.tokens:
            self.calls["request_leaves"] = self.calls.get("request_leaves", 0) + 1
            raise ChainError(
                f"requestLeaves failed: ERC20InsufficientBalance({self.me}, {self.tokens}, {need})"
            )
        self.tokens -= need
        return super().request_leaves(batch_id, indices, root, bond_each)


def test_audit9_balanceForSomeLeavesOnly_stillRequestsThoseItCanPay(tmp_path: Path) -> None:
    """Four sampled leaves of a withheld batch, tokens for two bonds (the bond cap is far
    higher): two leaves must be requested (as one requestLeaf each did), not none."""
    db = tmp_path / "c.sqlite"
    chain = ShortOfTokens()
    setup(db, chain)
    ch = make(db, chain)
    tick_until(ch, chain, DEADLINE + 1)
    assert len(requests_sent(chain)) == 2, (
        f"{chain.calls.get('request_leaves', 0)} requestLeaves transactions reverted for want "
        f"of tokens; leaves requested: {requests_sent(chain)}"
    )
    states = [ch.store.leaf_request(batch_leaf_key(BATCH, i)) for i in range(4)]
    assert sum(r is not None and r.state is LeafRequestState.OPEN for r in states) == 2


def test_audit9_leafDisputedBySomeoneElse_notRequestedAgainAndAgain_notMissed(
    tmp_path: Path,
) -> None:
    """Leaf 1 of the withheld batch carries someone else's dispute (no leaf request): one
    requestLeaves for the batch, not one more every other tick until the window closes; the
    leaf is not reported as a leaf request this challenger failed to send."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    setup(db, chain)
    key = batch_leaf_key(BATCH, 1)
    chain.disputes[key] = DisputeView(DisputeStatus.OPEN, OTHER, BOND, 1000 + PROOF_WINDOW)
    ch = make(db, chain)
    tick_until(ch, chain, DEADLINE + 5)
    with_leaf_1 = [ix for _, ix in chain.leaf_request_txs if 1 in ix]
    assert len(with_leaf_1) <= 1, (
        f"{len(with_leaf_1)} requestLeaves transactions named the disputed leaf "
        f"({len(chain.leaf_request_txs)} in all, {GIVE_UP}..{DEADLINE})"
    )
    assert chain.leaf_requests.get(key) is None  # never requested: the dispute claims it
    for i in (0, 2, 3):
        assert chain.leaf_request(batch_leaf_key(BATCH, i)).status is LeafRequestStatus.OPEN
    row = ch.store.leaf_request(key)
    assert row is not None and row.state is not LeafRequestState.MISSED, row
    assert ch.store.leaf_request_summary()["missed"] == 0
