"""Leaf claims (``challenger.claims.LeafClaimer``) against an in-memory CheckPool: a batch leaf
we sampled and found correct is claimed once (``claimLeaves``), collected once its batch is
final, recorded forfeited when it is invalidated, and survives a restart mid-send."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from challenger.chain_io import PoolAccount
from challenger.claims import Claimer, ClaimOptions
from challenger.sampling import SamplingPolicy, proof_text
from challenger.store import ClaimState, JobState, Leaf, Store
from spotcheck import vrf
from spotcheck.chain import BatchStatus, ClaimStatus, TxResult
from spotcheck.encoding import batch_leaf_key
from spotcheck.errors import RevertError
from spotcheck.follower import open_db
from tests.unit.test_challenger_claims import COLLATERAL, MODEL, SEED, FakePool

POLICY = SamplingPolicy(secret=b"\x05" * 32, default_rate=1.0)
BATCH = 7
COMMIT_BLOCK = 90
WINDOW_END = 2000

Ref = tuple[int, int]


@dataclass
class FakeLeafPool(FakePool):
    """FakePool plus the leaf reads and sends."""

    batch_status: BatchStatus = BatchStatus.COMMITTED
    batch_block: int = COMMIT_BLOCK
    invalid: set[Ref] = field(default_factory=set)
    leaf_status: dict[Ref, ClaimStatus] = field(default_factory=dict)
    leaf_sends: list[list[Ref]] = field(default_factory=list)
    leaf_collected: list[Ref] = field(default_factory=list)
    leaf_forfeits: list[Ref] = field(default_factory=list)
    leaf_fail: BaseException | None = None
    batch_bps: int | None = None

    def pool_account(self) -> PoolAccount:
        acct = super().pool_account()
        open_leaves = sum(1 for s in self.leaf_status.values() if s is ClaimStatus.OPEN)
        return PoolAccount(
            acct.registered, acct.exiting, acct.free_bond - open_leaves * COLLATERAL, COLLATERAL
        )

    def batch_state(self, batch_id: int) -> tuple[BatchStatus, int]:
        return self.batch_status, self.batch_block

    def leaf_invalid(self, batch_id: int, index: int) -> bool:
        return (batch_id, index) in self.invalid

    def pool_leaf_claim_status(self, batch_id: int, index: int) -> ClaimStatus:
        return self.leaf_status.get((batch_id, index), ClaimStatus.NONE)

    def pool_batch_seed_recorded(self, batch_id: int) -> bool:
        return True

    def pool_batch_sampling_bps(self, batch_id: int) -> int:
        # The pool's snapshot of the batch's rate (A6-5); the model's current one by default.
        return self.bps if self.batch_bps is None else self.batch_bps

    def pool_record_batch_seed(self, batch_id: int) -> TxResult:
        raise AssertionError("the seed is recorded: never sent")

    def pool_claim_leaves(self, claims: Sequence[tuple[int, int, vrf.G1Point]]) -> TxResult:
        self.leaf_sends.append([(b, i) for b, i, _ in claims])
        if self.leaf_fail is not None:
            raise self.leaf_fail
        for b, i, proof in claims:
            assert proof == vrf.prove(POLICY.sk, SEED, batch_leaf_key(b, i))
            assert self.pool_leaf_claim_status(b, i) is ClaimStatus.NONE, "claimed twice"
            self.leaf_status[(b, i)] = ClaimStatus.OPEN
        return TxResult(f"0x{len(self.leaf_sends):064x}", self.height)

    def pool_collect_leaf(self, batch_id: int, index: int) -> tuple[TxResult, int]:
        self.leaf_collected.append((batch_id, index))
        self.leaf_status[(batch_id, index)] = ClaimStatus.COLLECTED
        return TxResult("0x" + "ee" * 32, self.height), 3

    def pool_leaf_collected(self, batch_id: int, index: int, since_block: int) -> int | None:
        # The LeafRewardCollected log to us (None: no log seen).
        return 3 if (batch_id, index) in self.leaf_collected else None

    def pool_forfeit_leaf(self, batch_id: int, index: int) -> TxResult:
        ref = (batch_id, index)
        assert self.leaf_status.get(ref) is ClaimStatus.OPEN, "forfeit of a claim not open"
        self.leaf_forfeits.append(ref)
        self.leaf_status[ref] = ClaimStatus.FORFEITED
        return TxResult("0x" + "ff" * 32, self.height)


def _leaves(store: Store, indices: Sequence[int], matched: Sequence[int]) -> None:
    """A fetched batch whose leaves ``indices`` were sampled (with VRF proofs); ``matched``
    of them found correct by the circuit."""
    Store.record_batch(
        store.conn, batch_id=BATCH, model_id=MODEL, node="0xnode", root=b"\x01" * 32,
        count=8, uri="u", challenge_deadline=WINDOW_END, commit_block=COMMIT_BLOCK,
    )  # fmt: skip
    batch = store.batch(BATCH)
    assert batch is not None
    leaves = [(Leaf(i, 100 + i, [i], [i], b"\x02" * 32, b"\x03" * 32, []), True) for i in indices]
    proofs = {i: proof_text(vrf.prove(POLICY.sk, SEED, batch_leaf_key(BATCH, i))) for i in indices}
    assert store.fetched_batch(batch, leaves, proofs)
    for i in matched:
        store.transition(batch_leaf_key(BATCH, i), JobState.MATCHED, witness_diff=0)


def _claimer(tmp_path: Path, pool: FakeLeafPool, **opts: int) -> Claimer:
    store = Store(open_db(tmp_path / "c.sqlite"))
    return Claimer(store, pool, ClaimOptions(**{"max_wait_s": 0, **opts}))


def _states(c: Claimer) -> dict[int, ClaimState]:
    assert c.leaves is not None
    return {r.index: r.state for r in c.leaves.claims.claims(*ClaimState)}


def test_matchedLeaves_claimedOnce_inBatches_unmatchedNever(tmp_path: Path) -> None:
    pool = FakeLeafPool()
    c = _claimer(tmp_path, pool, batch_size=2)
    _leaves(c.store, [0, 1, 2, 3], matched=[0, 2, 3])
    report = c.step()
    assert pool.leaf_sends == [[(BATCH, 0), (BATCH, 2)], [(BATCH, 3)]] and report.sent == 3
    c.step()
    assert len(pool.leaf_sends) == 2
    assert _states(c) == {0: ClaimState.OPEN, 2: ClaimState.OPEN, 3: ClaimState.OPEN}


def test_openLeafClaims_collectedWhenBatchFinal_forfeitedWhenLeafInvalid(tmp_path: Path) -> None:
    pool = FakeLeafPool()
    c = _claimer(tmp_path, pool)
    _leaves(c.store, [0, 1], matched=[0, 1])
    c.step()
    pool.invalid.add((BATCH, 1))
    report = c.step()  # the leaf is invalid while the batch is still open: recorded at once
    assert report.forfeited == 1 and _states(c)[1] is ClaimState.FORFEITED
    assert pool.leaf_forfeits == [(BATCH, 1)]  # closed on chain: the bond can leave
    assert pool.leaf_collected == []
    pool.batch_status = BatchStatus.FINAL
    report = c.step()
    assert report.paid == 1 and report.payouts == 3
    assert _states(c) == {0: ClaimState.COLLECTED, 1: ClaimState.FORFEITED}
    summary = c.claims.summary()  # jobs and leaves together
    assert summary["payouts"] == 3 and summary["forfeits"] == COLLATERAL
    c.step()
    assert pool.leaf_collected == [(BATCH, 0)]


def test_leafClaim_restartBetweenSendAndReceipt_adoptedNotResent(tmp_path: Path) -> None:
    pool = FakeLeafPool()
    c = _claimer(tmp_path, pool)
    _leaves(c.store, [4], matched=[4])
    assert c.leaves is not None
    c.leaves.claims.plan(
        c.leaves.claims.unplanned()[0][0], WINDOW_END, ClaimState.PLANNED, 1000, None
    )
    c.leaves.claims.transition(batch_leaf_key(BATCH, 4), ClaimState.SENDING, sent_block=100)
    pool.leaf_status[(BATCH, 4)] = ClaimStatus.OPEN  # the lost receipt's transaction landed
    c2 = Claimer(Store(open_db(tmp_path / "c.sqlite")), pool, ClaimOptions(max_wait_s=0))
    c2.step()
    assert pool.leaf_sends == [] and _states(c2) == {4: ClaimState.OPEN}


def test_leafRefusedAlone_isMissed_batchOfSeveral_retriedLeafByLeaf(tmp_path: Path) -> None:
    pool = FakeLeafPool(
        leaf_fail=RevertError("claimLeaves failed: LeafNotClaimable", "LeafNotClaimable")
    )
    c = _claimer(tmp_path, pool)
    _leaves(c.store, [0, 1], matched=[0, 1])
    c.step()
    assert _states(c) == {0: ClaimState.PLANNED, 1: ClaimState.PLANNED}
    c.step()  # each alone now, both refused: missed, never retried
    assert pool.leaf_sends[1:] == [[(BATCH, 0)], [(BATCH, 1)]]
    assert set(_states(c).values()) == {ClaimState.MISSED}
    c.step()
    assert len(pool.leaf_sends) == 3


def test_batchNoLongerCommitted_orLeafInvalid_orWindowOver_isMissed(tmp_path: Path) -> None:
    pool = FakeLeafPool()
    c = _claimer(tmp_path, pool)
    _leaves(c.store, [0, 1], matched=[0, 1])
    pool.invalid.add((BATCH, 0))
    pool.batch_block = COMMIT_BLOCK + 1  # a reorg moved the batch: proofs may be stale
    c.step()
    assert pool.leaf_sends == [] and set(_states(c).values()) == {ClaimState.MISSED}


def test_leafClaims_followTheBatchsSnapshotRate_notTheModelsCurrentOne(tmp_path: Path) -> None:
    """A6-5: the pool samples a batch's leaves at the rate of its commit; a later terms change
    (here to 0) neither stops the claims nor makes the claimer give them up."""
    pool = FakeLeafPool(bps=0, batch_bps=10_000)
    c = _claimer(tmp_path, pool)
    _leaves(c.store, [0, 1], matched=[0, 1])
    c.step()
    assert pool.leaf_sends == [[(BATCH, 0), (BATCH, 1)]]
