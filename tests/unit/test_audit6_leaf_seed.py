"""Audit 6, A6-8: nobody records a batch's seed early, so a re-run longer than 256 blocks
loses every paid check of the batch (the node gets its whole deposit back).

A leaf claim needs the batch seed ``blockhash(commitBlock + 1)`` recorded in the CheckPool
while ``blockhash`` can still read it (256 blocks); the first claim records it. The challenger
only claims a leaf after fetching the listing and re-running it by the circuit (the claim
batching waits too), and never sends ``recordBatchSeed`` on its own: past 256 blocks its
claims are ``missed`` ("seed unavailable") although it knew at once (its VRF) which leaves it
would claim. 256 blocks are 51 minutes on Ethereum, 8.5 minutes at 2 s blocks, about a minute
on a 250 ms chain: a large batch's re-run outlasts them, diligent work goes unpaid, and the
node's deposit comes back in full. Safe: a challenger whose sample holds a leaf of the batch
makes sure the seed is recorded in time, and claims the leaf once it has checked it. Fakes
from test_challenger_leaf_claims.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from challenger.store import ClaimState, JobState
from spotcheck.chain import TxResult
from spotcheck.encoding import batch_leaf_key
from tests.unit.test_challenger_leaf_claims import (
    BATCH,
    COMMIT_BLOCK,
    FakeLeafPool,
    _claimer,
    _leaves,
    _states,
)


@dataclass
class SeedPool(FakeLeafPool):
    """The seed is recorded only by a claim or by ``recordBatchSeed`` while readable."""

    recorded: set[int] = field(default_factory=set)

    def pool_batch_seed_recorded(self, batch_id: int) -> bool:
        return batch_id in self.recorded

    def pool_record_batch_seed(self, batch_id: int) -> TxResult:
        assert self.height <= COMMIT_BLOCK + 1 + 256, "seed no longer readable"
        self.recorded.add(batch_id)
        return TxResult("0x" + "5e" * 32, self.height)


@pytest.mark.xfail(
    strict=True,
    reason="A6-8: the challenger never records a batch seed before its re-run ends; a re-run "
    "longer than 256 blocks turns every claim of the batch into 'missed'",
)
def test_audit6_leafReRunLongerThan256Blocks_claimStillSent(tmp_path: Path) -> None:
    pool = SeedPool(height=COMMIT_BLOCK + 2)
    c = _claimer(tmp_path, pool)
    _leaves(c.store, [0], matched=[])  # sampled (our VRF says we will claim it), re-run running
    c.step()
    pool.height = COMMIT_BLOCK + 300  # the re-run of a large batch took 300 blocks
    c.store.transition(batch_leaf_key(BATCH, 0), JobState.MATCHED, witness_diff=0)
    c.step()
    assert _states(c) == {0: ClaimState.OPEN}, c.leaves.claims.claims(*ClaimState)  # type: ignore[union-attr]
