"""Paid checks of batch leaves on anvil (issue 15): the node's check deposit pulled at
``commitBatch``, VRF claims of leaves (``claimLeaves``), payment once the batch is final,
unclaimed deposits back to the node, forfeits and burned deposits of invalid leaves.

Attack first: every refusal below is an attack on one guarantee (a blind, replayed, stolen,
out-of-range or late claim; a claim on a leaf whose outcome is already known; a cheating
node getting its deposit back)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import ape
import pytest

from spotcheck import check_pool as cp
from spotcheck import vrf
from spotcheck.chain import TOKEN, ClaimStatus
from spotcheck.encoding import batch_leaf_key, hash_vector, leaf_hash
from spotcheck.errors import ChainError
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import BURN, FUNDING, MOCK_MODEL, TEST_PARAMS, advance

pytestmark = pytest.mark.chain

LEAF_FEE = TOKEN // 10  # the node's check deposit per leaf
COUNT = 5
MIN_BOND = TEST_PARAMS.check_min_bond
COLLATERAL = TEST_PARAMS.check_claim_collateral
KEY_A = vrf.keypair(0xA11CE)
KEY_B = vrf.keypair(0xB0B)

Leaves = list[tuple[int, list[int], list[int]]]


@pytest.fixture
def pool(spotcheck: Any, deployer: Any) -> Any:
    p = spotcheck.contracts.check_pool
    cp.set_model_terms(p, spotcheck.model_id, 2000, 10_000, sender=deployer)
    cp.set_leaf_check_fee(p, spotcheck.model_id, LEAF_FEE, sender=deployer)
    return p


@pytest.fixture
def registered(accounts: Any, spotcheck: Any, pool: Any, deployer: Any) -> tuple[Any, Any]:
    a, b = accounts[6], accounts[7]
    for who, key in ((a, KEY_A), (b, KEY_B)):
        spotcheck.token.mint(who, FUNDING, sender=deployer)
        spotcheck.token.approve(pool, 2**256 - 1, sender=who)
        cp.register(pool, key, MIN_BOND, sender=who)
    return a, b


def _commit(
    spotcheck: Any, node: Any, count: int = COUNT, model_id: bytes | None = None
) -> tuple[int, Leaves, MerkleTree]:
    model = model_id or spotcheck.model_id
    jobs = [(500 + i, [i, -i, 2 * i, 3], [10 * i, -i]) for i in range(count)]
    tree = MerkleTree([leaf_hash(j, model, hash_vector(i), hash_vector(o)) for j, i, o in jobs])
    receipt = spotcheck.job_manager.commitBatch(model, tree.root, count, "http://n/b", sender=node)
    return int(receipt.return_value), jobs, tree


@pytest.fixture
def batch(spotcheck: Any, node: Any, pool: Any, chain: Any) -> tuple[int, Leaves, MerkleTree]:
    b = _commit(spotcheck, node)
    chain.mine(1)  # the seed block commitBlock + 1
    return b


def _seed(chain: Any, spotcheck: Any, batch_id: int) -> bytes:
    commit_block = int(spotcheck.job_manager.getBatch(batch_id).commitBlock)
    if chain.blocks.height < commit_block + 1:
        chain.mine(1)
    return bytes(chain.blocks[commit_block + 1].hash)


def _claim(key: vrf.KeyPair, seed: bytes, batch_id: int, index: int) -> cp.LeafClaim:
    c = cp.make_leaf_claim(key, batch_id, index, seed, 10_000)
    assert c is not None
    return c


def _dispute(spotcheck: Any, batch: Any, index: int, who: Any) -> bytes:
    batch_id, jobs, tree = batch
    job_id, inp, out = jobs[index]
    receipt = spotcheck.dispute_manager.openBatchDispute(
        batch_id, index, job_id, hash_vector(inp), hash_vector(out), tree.proof(index), sender=who
    )
    return bytes(receipt.return_value)


def _past_window(chain: Any) -> None:
    advance(chain, MOCK_MODEL.challenge_window + 1)


# ---------------------------------------------------------------- deposit at commit


def test_commitBatch_pullsCountTimesLeafFee_fromNodeIntoPool(
    spotcheck: Any, pool: Any, node: Any, deployer: Any
) -> None:
    token, jm = spotcheck.token, spotcheck.job_manager
    node_before, pool_before = token.balanceOf(node), token.balanceOf(pool)
    batch_id, _, _ = _commit(spotcheck, node)
    assert token.balanceOf(node) == node_before - COUNT * LEAF_FEE
    assert token.balanceOf(pool) == pool_before + COUNT * LEAF_FEE
    d = pool.getBatchDeposit(batch_id)
    assert (d.perLeaf, d.count, d.claimedLeaves, d.recorded, d.refunded) == (
        LEAF_FEE,
        COUNT,
        0,
        True,
        False,
    )
    # the fee is a snapshot: a later change does not touch committed batches
    cp.set_leaf_check_fee(pool, spotcheck.model_id, 3 * LEAF_FEE, sender=deployer)
    receipt = jm.commitBatch(spotcheck.model_id, b"\x01" * 32, 2, "", sender=node)
    [ev] = receipt.events.filter(jm.BatchCheckDepositPaid)
    assert (ev.checkPool, ev.deposit) == (pool, 2 * 3 * LEAF_FEE)
    assert pool.getBatchDeposit(batch_id).perLeaf == LEAF_FEE


def test_commitBatch_withoutApproval_reverts(
    spotcheck: Any, pool: Any, node: Any, deployer: Any
) -> None:
    spotcheck.token.approve(spotcheck.job_manager, COUNT * LEAF_FEE - 1, sender=node)
    with ape.reverts():
        _commit(spotcheck, node)


def test_setLeafCheckFee_onlyRegistrar(spotcheck: Any, pool: Any, outsider: Any) -> None:
    with ape.reverts(pool.NotRegistrar, caller=outsider):
        pool.setLeafCheckFee(spotcheck.model_id, 1, sender=outsider)


# ---------------------------------------------------------------- paid after finalizeBatch


def test_validLeafClaims_paidAfterFinalizeBatch_dustToLast_unclaimedBackToNode(
    spotcheck: Any, pool: Any, batch: Any, registered: tuple[Any, Any], node: Any, chain: Any
) -> None:
    a, b = registered
    batch_id, _, _ = batch
    token, jm = spotcheck.token, spotcheck.job_manager
    seed = _seed(chain, spotcheck, batch_id)
    tx = cp.claim_leaves(pool, [_claim(KEY_A, seed, batch_id, i) for i in (0, 1)], sender=a)
    assert [e.index for e in tx.receipt.events.filter(pool.LeafCheckClaimed)] == [0, 1]
    cp.claim_leaves(pool, [_claim(KEY_B, seed, batch_id, 1)], sender=b)
    assert pool.batchSeedOf(batch_id) == seed
    assert pool.getChallenger(a).openClaims == 2 and pool.freeBond(a) == MIN_BOND - 2 * COLLATERAL
    assert pool.getBatchDeposit(batch_id).claimedLeaves == 2
    assert cp.leaf_claim_status(pool, batch_id, 1, b.address) is ClaimStatus.OPEN
    # not before the batch is final
    with pytest.raises(ChainError, match="BatchNotFinal"):
        cp.collect_leaf(pool, batch_id, 0, sender=a)
    with pytest.raises(ChainError, match="BatchNotFinal"):
        cp.refund_batch_deposit(pool, batch_id, sender=node)
    _past_window(chain)
    jm.finalizeBatch(batch_id, sender=node)
    a0, b0, n0 = token.balanceOf(a), token.balanceOf(b), token.balanceOf(node)
    cp.collect_leaf(pool, batch_id, 0, sender=a)
    assert token.balanceOf(a) == a0 + LEAF_FEE
    cp.collect_leaf(pool, batch_id, 1, sender=a)
    cp.collect_leaf(pool, batch_id, 1, sender=b)
    assert token.balanceOf(a) - a0 == LEAF_FEE + LEAF_FEE // 2
    assert token.balanceOf(b) - b0 == LEAF_FEE - LEAF_FEE // 2  # the last collector's dust
    with pytest.raises(ChainError, match="NoOpenLeafClaim"):
        cp.collect_leaf(pool, batch_id, 1, sender=b)
    assert pool.getChallenger(a).openClaims == 0 and pool.freeBond(a) == MIN_BOND
    # the three unclaimed leaves' deposits go back to the node (anyone may trigger it), once
    tx = cp.refund_batch_deposit(pool, batch_id, sender=a)
    [ev] = tx.receipt.events.filter(pool.BatchDepositRefunded)
    assert ev.amount == 3 * LEAF_FEE and token.balanceOf(node) == n0 + 3 * LEAF_FEE
    with pytest.raises(ChainError, match="DepositAlreadyRefunded"):
        cp.refund_batch_deposit(pool, batch_id, sender=node)
    # solvency: only the bonds are left
    assert token.balanceOf(pool) == 2 * MIN_BOND


def test_unclaimedBatch_wholeDepositBackToNode(
    spotcheck: Any, pool: Any, batch: Any, node: Any, chain: Any
) -> None:
    batch_id, _, _ = batch
    _past_window(chain)
    spotcheck.job_manager.finalizeBatch(batch_id, sender=node)
    before = spotcheck.token.balanceOf(node)
    cp.refund_batch_deposit(pool, batch_id, sender=node)
    assert spotcheck.token.balanceOf(node) == before + COUNT * LEAF_FEE


# ---------------------------------------------------------------- refusals


def test_leafClaim_notSampled_refused(
    spotcheck: Any, pool: Any, registered: tuple[Any, Any], deployer: Any, node: Any, chain: Any
) -> None:
    a, _ = registered
    # The rate is the batch's, snapshot at commit (A6-5): set it before the batch.
    cp.set_model_terms(pool, spotcheck.model_id, 2000, 1, sender=deployer)  # 0.01 %
    batch_id, _, _ = _commit(spotcheck, node)
    seed = _seed(chain, spotcheck, batch_id)
    index = next(i for i in range(COUNT) if cp.make_leaf_claim(KEY_A, batch_id, i, seed, 1) is None)
    blind = _claim(KEY_A, seed, batch_id, index)  # a real proof, just not in the sample
    with ape.reverts(pool.LeafNotSampled):
        pool.claimLeaves([batch_id], [index], [list(blind.proof.words())], sender=a)
    assert pool.getChallenger(a).openClaims == 0


def test_leafClaim_indexOutOfRange_refused(
    spotcheck: Any, pool: Any, batch: Any, registered: tuple[Any, Any], chain: Any
) -> None:
    a, _ = registered
    batch_id, _, _ = batch
    seed = _seed(chain, spotcheck, batch_id)
    c = _claim(KEY_A, seed, batch_id, COUNT)
    with ape.reverts(pool.LeafIndexOutOfRange, batchId=batch_id, index=COUNT, count=COUNT):
        pool.claimLeaves([batch_id], [COUNT], [list(c.proof.words())], sender=a)


def test_leafClaim_replayed_andListedTwice_refused(
    spotcheck: Any, pool: Any, batch: Any, registered: tuple[Any, Any], chain: Any
) -> None:
    a, _ = registered
    batch_id, _, _ = batch
    seed = _seed(chain, spotcheck, batch_id)
    c = _claim(KEY_A, seed, batch_id, 2)
    cp.claim_leaves(pool, [c], sender=a)
    with ape.reverts(pool.LeafAlreadyClaimed, batchId=batch_id, index=2, claimant=a):
        pool.claimLeaves([batch_id], [2], [list(c.proof.words())], sender=a)
    d = _claim(KEY_A, seed, batch_id, 3)
    with ape.reverts(pool.LeafAlreadyClaimed, batchId=batch_id, index=3, claimant=a):
        pool.claimLeaves([batch_id] * 2, [3, 3], [list(d.proof.words())] * 2, sender=a)


def test_leafClaim_anotherChallengersProof_refused_singleAndBatched(
    spotcheck: Any, pool: Any, batch: Any, registered: tuple[Any, Any], chain: Any
) -> None:
    _, b = registered
    batch_id, _, _ = batch
    seed = _seed(chain, spotcheck, batch_id)
    stolen = _claim(KEY_A, seed, batch_id, 0)
    with ape.reverts(pool.InvalidLeafProof, batchId=batch_id, index=0):
        pool.claimLeaves([batch_id], [0], [list(stolen.proof.words())], sender=b)
    own = _claim(KEY_B, seed, batch_id, 1)
    with ape.reverts(pool.InvalidBatchProof):
        pool.claimLeaves(
            [batch_id] * 2, [0, 1], [list(stolen.proof.words()), list(own.proof.words())], sender=b
        )
    # a job's proof is no leaf's proof (other jobRef), even for the same seed
    wrong_ref = vrf.prove(KEY_B.secret, seed, batch_leaf_key(batch_id, 2))
    with ape.reverts(pool.InvalidLeafProof, batchId=batch_id, index=1):
        pool.claimLeaves([batch_id], [1], [list(wrong_ref.words())], sender=b)
    assert pool.getChallenger(b).openClaims == 0


def test_leafClaim_afterLeafSlashed_orDisputed_orProven_refused(
    spotcheck: Any,
    pool: Any,
    batch: Any,
    registered: tuple[Any, Any],
    challenger: Any,
    outsider: Any,
    node: Any,
    chain: Any,
) -> None:
    a, _ = registered
    batch_id, _, _ = batch
    dm = spotcheck.dispute_manager
    seed = _seed(chain, spotcheck, batch_id)
    dispute_id = _dispute(spotcheck, batch, 1, challenger)
    c1 = _claim(KEY_A, seed, batch_id, 1)
    # an open dispute: its outcome is no longer open to a check
    with ape.reverts(pool.LeafNotClaimable, batchId=batch_id, index=1):
        pool.claimLeaves([batch_id], [1], [list(c1.proof.words())], sender=a)
    advance(chain, MOCK_MODEL.challenge_window // 2)
    # An open leaf request is not a verdict: the leaf stays claimable (A6-2).
    req = dm.requestLeaf(batch_id, 4, batch[2].root, sender=challenger)
    c4 = _claim(KEY_A, seed, batch_id, 4)
    pool.claimLeaves([batch_id], [4], [list(c4.proof.words())], sender=a)
    assert pool.claimOf(batch_leaf_key(batch_id, 4), a) == 1  # Open
    assert req is not None
    advance(chain, MOCK_MODEL.challenge_window // 2 + MOCK_MODEL.proof_window + 1)
    dm.settle(dispute_id, sender=outsider)
    assert spotcheck.job_manager.batchLeafInvalid(batch_leaf_key(batch_id, 1))
    # (the window is over too, but the leaf's verdict is checked first after status and window:
    # test it inside a fresh window below)
    with ape.reverts(pool.BatchClaimWindowClosed):
        pool.claimLeaves([batch_id], [1], [list(c1.proof.words())], sender=a)


def test_leafClaim_afterLeafSlashed_insideWindow_refusedLeafInvalid(
    spotcheck: Any,
    pool: Any,
    registered: tuple[Any, Any],
    register_model: Any,
    project: Any,
    deployer: Any,
    challenger: Any,
    outsider: Any,
    node: Any,
    chain: Any,
) -> None:
    """A model whose challenge window outlasts a leaf request's reveal deadline: the leaf is
    invalid while the batch is still claimable."""
    a, _ = registered
    dm = spotcheck.dispute_manager
    long_model = register_model(
        project.MockVerifier.deploy(sender=deployer),
        replace(MOCK_MODEL, challenge_window=400),
        tag=b"long",
    )
    cp.set_model_terms(pool, long_model, 2000, 10_000, sender=deployer)
    cp.set_leaf_check_fee(pool, long_model, LEAF_FEE, sender=deployer)
    b = _commit(spotcheck, node, model_id=long_model)
    batch_id, _, tree = b
    seed = _seed(chain, spotcheck, batch_id)
    request_id = bytes(dm.requestLeaf(batch_id, 0, tree.root, sender=challenger).return_value)
    r = dm.getLeafRequest(request_id)
    advance(chain, int(r.revealDeadline) - int(chain.pending_timestamp) + 1)
    assert int(chain.pending_timestamp) <= int(
        spotcheck.job_manager.getBatch(batch_id).challengeDeadline
    )
    dm.settleLeafRequest(request_id, sender=outsider)  # unrevealed: the leaf is invalid
    c = _claim(KEY_A, seed, batch_id, 0)
    with ape.reverts(pool.LeafInvalid, batchId=batch_id, index=0):
        pool.claimLeaves([batch_id], [0], [list(c.proof.words())], sender=a)


def test_leafClaim_afterWindow_orBatchFinal_orUnregistered_refused(
    spotcheck: Any,
    pool: Any,
    batch: Any,
    registered: tuple[Any, Any],
    outsider: Any,
    node: Any,
    chain: Any,
) -> None:
    a, _ = registered
    batch_id, _, _ = batch
    seed = _seed(chain, spotcheck, batch_id)
    c = _claim(KEY_A, seed, batch_id, 0)
    words = [list(c.proof.words())]
    with ape.reverts(pool.NotRegistered, challenger=outsider):
        pool.claimLeaves([batch_id], [0], words, sender=outsider)
    _past_window(chain)
    deadline = spotcheck.job_manager.getBatch(batch_id).challengeDeadline - pool.claimMargin()
    with ape.reverts(pool.BatchClaimWindowClosed, batchId=batch_id, deadline=deadline):
        pool.claimLeaves([batch_id], [0], words, sender=a)
    spotcheck.job_manager.finalizeBatch(batch_id, sender=node)
    with ape.reverts(pool.BatchNotClaimable):
        pool.claimLeaves([batch_id], [0], words, sender=a)


# ---------------------------------------------------------------- invalid leaves


def test_claimedLeafEndsInvalid_collateralBurned_depositBurned_nodeRefundExcludesIt(
    spotcheck: Any,
    pool: Any,
    batch: Any,
    registered: tuple[Any, Any],
    challenger: Any,
    outsider: Any,
    node: Any,
    chain: Any,
) -> None:
    """A lazy claimant claims leaf 2 unchecked; the node cheated there and a diligent
    challenger disputes it: the claimant's collateral and the leaf's deposit are burned; the
    node gets back only the deposits of its valid, unclaimed leaves."""
    a, _ = registered
    batch_id, _, tree = batch
    token, dm, jm = spotcheck.token, spotcheck.dispute_manager, spotcheck.job_manager
    seed = _seed(chain, spotcheck, batch_id)
    cp.claim_leaves(pool, [_claim(KEY_A, seed, batch_id, 2)], sender=a)
    dispute_id = _dispute(spotcheck, batch, 2, challenger)
    request_id = bytes(dm.requestLeaf(batch_id, 3, tree.root, sender=challenger).return_value)
    with pytest.raises(ChainError, match="LeafNotInvalid"):
        cp.forfeit_leaf(pool, batch_id, 2, a.address, sender=outsider)
    advance(chain, MOCK_MODEL.challenge_window + MOCK_MODEL.proof_window + 1)
    burned0 = token.balanceOf(BURN)
    receipt = dm.settle(dispute_id, sender=outsider)
    [ev] = receipt.events.filter(pool.LeafDepositBurned)
    assert (ev.batchId, ev.index, ev.amount) == (batch_id, 2, LEAF_FEE)
    dm.settleLeafRequest(request_id, sender=outsider)  # leaf 3: unclaimed, unrevealed
    assert pool.getBatchDeposit(batch_id).invalidUnclaimed == 1
    tx = cp.forfeit_leaf(pool, batch_id, 2, a.address, sender=outsider)
    [fev] = tx.receipt.events.filter(pool.LeafCollateralForfeited)
    assert (fev.claimant, fev.amount) == (a, COLLATERAL)
    assert pool.getChallenger(a).bond == MIN_BOND - COLLATERAL
    assert pool.getChallenger(a).openClaims == 0
    assert cp.leaf_claim_status(pool, batch_id, 2, a.address) is ClaimStatus.FORFEITED
    with pytest.raises(ChainError, match="NoOpenLeafClaim"):
        cp.forfeit_leaf(pool, batch_id, 2, a.address, sender=outsider)
    jm.finalizeBatch(batch_id, sender=outsider)
    with pytest.raises(ChainError, match="LeafInvalid"):
        cp.collect_leaf(pool, batch_id, 2, sender=a)
    n0 = token.balanceOf(node)
    cp.refund_batch_deposit(pool, batch_id, sender=node)
    assert token.balanceOf(node) == n0 + 3 * LEAF_FEE  # leaves 0, 1, 4
    # pool solvency: the two bonds (one less the burned collateral)
    assert token.balanceOf(pool) == 2 * MIN_BOND - COLLATERAL
    assert token.balanceOf(BURN) - burned0 >= 2 * LEAF_FEE + COLLATERAL


def test_batchWithoutLeafFee_paysNoDeposit_leavesNotClaimable(
    spotcheck: Any, pool: Any, registered: tuple[Any, Any], deployer: Any, node: Any, chain: Any
) -> None:
    a, _ = registered
    cp.set_leaf_check_fee(pool, spotcheck.model_id, 0, sender=deployer)
    n0 = spotcheck.token.balanceOf(node)
    batch_id, _, _ = _commit(spotcheck, node)
    assert spotcheck.token.balanceOf(node) == n0
    assert not pool.getBatchDeposit(batch_id).recorded
    seed = _seed(chain, spotcheck, batch_id)
    c = _claim(KEY_A, seed, batch_id, 0)
    with ape.reverts(pool.BatchNotFunded, batchId=batch_id):
        pool.claimLeaves([batch_id], [0], [list(c.proof.words())], sender=a)
    _past_window(chain)
    spotcheck.job_manager.finalizeBatch(batch_id, sender=node)
    with ape.reverts(pool.BatchNotFunded, batchId=batch_id):
        pool.refundBatchDeposit(batch_id, sender=node)


# ---------------------------------------------------------------- the node service


def test_nodeChain_approvesTheDeposit_commits_andTakesTheRefundAfterFinalize(
    spotcheck: Any, pool: Any, node: Any, chain: Any
) -> None:
    """The node's chain wrapper approves JobManager for exactly the batch's deposit when the
    allowance is short, and finalize_batch takes back the unclaimed deposits."""
    from prover.chain_io import NodeChain

    token, jm = spotcheck.token, spotcheck.job_manager
    token.approve(jm, 0, sender=node)
    nc = NodeChain(spotcheck.contracts, node)
    assert nc.batch_check_deposit(spotcheck.model_id, COUNT) == COUNT * LEAF_FEE
    before = token.balanceOf(node)
    _, batch_id, _ = nc.commit_batch(spotcheck.model_id, b"\x05" * 32, COUNT, "u")
    assert batch_id is not None
    assert token.balanceOf(node) == before - COUNT * LEAF_FEE
    assert token.allowance(node, jm) == 0  # approved for the deposit, no more
    _past_window(chain)
    nc.finalize_batch(batch_id)
    assert pool.getBatchDeposit(batch_id).refunded
    assert token.balanceOf(node) == before


def test_challengerChain_claimsALeaf_readsItsState_andCollects(
    spotcheck: Any, pool: Any, batch: Any, registered: tuple[Any, Any], node: Any, chain: Any
) -> None:
    """The challenger's chain methods for leaf claims against the real contracts."""
    from challenger.chain_io import ApeChain
    from spotcheck.chain import BatchStatus

    a, _ = registered
    batch_id, _, _ = batch
    ape_chain = ApeChain.from_contracts(spotcheck.contracts, a)
    seed = _seed(chain, spotcheck, batch_id)
    status, commit_block = ape_chain.batch_state(batch_id)
    assert status is BatchStatus.COMMITTED
    assert commit_block == int(spotcheck.job_manager.getBatch(batch_id).commitBlock)
    assert not ape_chain.pool_batch_seed_recorded(batch_id)
    c = _claim(KEY_A, seed, batch_id, 3)
    ape_chain.pool_claim_leaves([(batch_id, 3, c.proof)])
    assert ape_chain.pool_leaf_claim_status(batch_id, 3) is ClaimStatus.OPEN
    assert ape_chain.pool_batch_seed_recorded(batch_id)
    assert not ape_chain.leaf_invalid(batch_id, 3)
    _past_window(chain)
    spotcheck.job_manager.finalizeBatch(batch_id, sender=node)
    _, paid = ape_chain.pool_collect_leaf(batch_id, 3)
    assert paid == LEAF_FEE
    assert ape_chain.pool_leaf_claim_status(batch_id, 3) is ClaimStatus.COLLECTED


def test_nodeChain_batchFinalizedBySomeoneElse_refundStillTaken_once(
    spotcheck: Any, pool: Any, node: Any, chain: Any, outsider: Any
) -> None:
    """Anyone may finalize a batch (or the node restarts between finalize and refund): the
    node's finalize step then finds the batch final and still takes its unclaimed deposits
    back, once."""
    from prover.chain_io import NodeChain

    token = spotcheck.token
    nc = NodeChain(spotcheck.contracts, node)
    before = token.balanceOf(node)
    _, batch_id, _ = nc.commit_batch(spotcheck.model_id, b"\x06" * 32, COUNT, "u")
    assert batch_id is not None
    _past_window(chain)
    spotcheck.job_manager.finalizeBatch(batch_id, sender=outsider)
    nc.refund_deposit_if_due(batch_id)
    assert pool.getBatchDeposit(batch_id).refunded
    assert token.balanceOf(node) == before
    nc.refund_deposit_if_due(batch_id)  # already refunded: nothing sent, nothing raised
    assert token.balanceOf(node) == before
