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

from challenger.claims import Claimer
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
    seed_sends: list[int] = field(default_factory=list)

    def pool_batch_seed_recorded(self, batch_id: int) -> bool:
        return batch_id in self.recorded

    def pool_record_batch_seed(self, batch_id: int) -> TxResult:
        assert self.height <= COMMIT_BLOCK + 1 + 256, "seed no longer readable"
        assert batch_id not in self.recorded, "recorded twice"
        self.seed_sends.append(batch_id)
        self.recorded.add(batch_id)
        return TxResult("0x" + "5e" * 32, self.height)


def test_audit6_leafReRunLongerThan256Blocks_claimStillSent(tmp_path: Path) -> None:
    pool = SeedPool(height=COMMIT_BLOCK + 2)
    c = _claimer(tmp_path, pool)
    _leaves(c.store, [0], matched=[])  # sampled (our VRF says we will claim it), re-run running
    c.step()
    pool.height = COMMIT_BLOCK + 300  # the re-run of a large batch took 300 blocks
    c.store.transition(batch_leaf_key(BATCH, 0), JobState.MATCHED, witness_diff=0)
    c.step()
    assert _states(c) == {0: ClaimState.OPEN}, c.leaves.claims.claims(*ClaimState)  # type: ignore[union-attr]
    assert pool.recorded == {BATCH}


def test_audit6_seedRecordedOnce_acrossSteps_andRestarts(tmp_path: Path) -> None:
    """The seed is sent once: later steps (and a claimer rebuilt on the same store) see the
    journal, and a batch whose seed someone else recorded is never sent."""
    pool = SeedPool(height=COMMIT_BLOCK + 1)
    c = _claimer(tmp_path, pool)
    _leaves(c.store, [0, 1], matched=[])
    c.step()
    assert pool.recorded == set()  # the seed block is not mined yet
    pool.height = COMMIT_BLOCK + 2
    c.step()
    c.step()
    again = Claimer(c.store, pool, c.options)
    again.step()
    assert pool.recorded == {BATCH} and pool.seed_sends == [BATCH]


def test_audit6_seedAtTheLastReadableBlock_recorded_afterIt_neverSent(tmp_path: Path) -> None:
    pool = SeedPool(height=COMMIT_BLOCK + 1 + 256)  # the last block that can still read it
    c = _claimer(tmp_path, pool)
    _leaves(c.store, [0], matched=[])
    c.step()
    assert pool.recorded == {BATCH}
    late = SeedPool(height=COMMIT_BLOCK + 2 + 256)
    (tmp_path / "late").mkdir()
    c2 = _claimer(tmp_path / "late", late)
    _leaves(c2.store, [0], matched=[0])
    c2.step()
    assert late.seed_sends == [] and _states(c2) == {0: ClaimState.MISSED}
