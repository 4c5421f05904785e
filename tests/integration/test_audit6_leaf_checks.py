"""Audit 6 (issue 15: paid checks of batch leaves, the challenger's defence) on anvil.

Each test asserts the SAFE behaviour; the ones still open on today's code are marked
``xfail(strict=True)`` with their finding (A6-n). Set-up reused from test_check_pool_leaves.py
(batch of COUNT leaves, leaf fee LEAF_FEE, two registered claimants A and B). ``challenger``
plays the node's second address unless a test says otherwise."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from spotcheck import check_pool as cp
from spotcheck.encoding import batch_leaf_key
from spotcheck.errors import ChainError
from tests.fixtures.chain import MOCK_MODEL, advance, defence_instances
from tests.integration.test_check_pool_leaves import (  # noqa: F401  (fixtures: noqa F811)
    COLLATERAL,
    KEY_A,
    KEY_B,
    LEAF_FEE,
    MIN_BOND,
    _claim,
    _dispute,
    _seed,
    batch,
    pool,
    registered,
)

pytestmark = pytest.mark.chain


def _words(c: cp.LeafClaim) -> list[list[int]]:
    return [list(c.proof.words())]


def test_audit6_lazyClaimInTheWindowsLastSecond_canaryCanStillDisputeIt(
    spotcheck: Any,
    pool: Any,  # noqa: F811
    batch: Any,  # noqa: F811
    registered: tuple[Any, Any],  # noqa: F811
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """Leaf 2 is a canary (its operator's second address disputes undisputed cheats just
    before the window closes, demo/paid_checks.py). A lazy claimant never re-runs: it waits for
    the last second of the claim window and claims only leaves nobody disputed (a disputed
    leaf is refused, LeafNotClaimable, at no cost to it). Safe: a claim that lands can still be
    disputed (the claim window must close before the dispute window), and the canary burns the
    lazy collateral."""
    a, b = registered
    batch_id, _, _ = batch
    seed = _seed(chain, spotcheck, batch_id)
    deadline = int(spotcheck.job_manager.getBatch(batch_id).challengeDeadline)
    claim_deadline = deadline - int(pool.claimMargin())  # fixed: claims close first
    assert claim_deadline < deadline
    chain.pending_timestamp = claim_deadline  # the claim window's last second
    cp.claim_leaves(pool, [_claim(KEY_A, seed, batch_id, 2)], sender=a)  # lazy: accepted
    chain.pending_timestamp = claim_deadline + 1
    with pytest.raises(ChainError, match="BatchClaimWindowClosed"):
        cp.claim_leaves(pool, [_claim(KEY_B, seed, batch_id, 2)], sender=b)
    # The canary operator disputes right after, in a later block: on a real chain its
    # timestamp is above its parent's (anvil, once told, would mine both at one second); a
    # claim sent privately in the last block cannot be back-run in it.
    chain.pending_timestamp = claim_deadline + 2
    dispute_id = _dispute(spotcheck, batch, 2, challenger)
    advance(chain, MOCK_MODEL.proof_window + 1)
    spotcheck.dispute_manager.settle(dispute_id, sender=outsider)
    cp.forfeit_leaf(pool, batch_id, 2, a.address, sender=outsider)
    assert int(pool.getChallenger(a).bond) == MIN_BOND - COLLATERAL


def test_audit6_nodeSybilRequestsItsOwnLeaf_diligentClaimantStillPaid(
    spotcheck: Any,
    pool: Any,  # noqa: F811
    batch: Any,  # noqa: F811
    registered: tuple[Any, Any],  # noqa: F811
    challenger: Any,
    node: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """Claimant A re-ran leaf 1 (correct) and claims it. The node sees the claim coming (the
    mempool, or just every sampled-looking leaf) and asks for leaf 1 from its second address
    first: ``_leafContested`` refuses the claim. The node reveals after the claim window (the
    reveal deadline is a proof window after the request, later than the batch's challenge
    deadline), is credited the request's bond (its own), and ``refundBatchDeposit`` returns
    the unclaimed leaf's deposit. Cost to the node: gas. Safe: the claimant who did the work is
    paid the leaf's deposit."""
    a, _ = registered
    batch_id, jobs, tree = batch
    dm, jm, token = spotcheck.dispute_manager, spotcheck.job_manager, spotcheck.token
    seed = _seed(chain, spotcheck, batch_id)
    advance(chain, 10)  # some seconds into the window: the reveal deadline ends after it
    request_id = bytes(dm.requestLeaf(batch_id, 1, tree.root, sender=challenger).return_value)
    claim = _claim(KEY_A, seed, batch_id, 1)
    try:
        cp.claim_leaves(pool, [claim], sender=a)
    except ChainError as err:  # today: refused while the node's own request is open
        assert "LeafNotClaimable" in str(err), err
    reveal_deadline = int(dm.getLeafRequest(request_id).revealDeadline)
    deadline = int(jm.getBatch(batch_id).challengeDeadline)
    assert reveal_deadline > deadline + 1, "set-up: the reveal must fit after the claim window"
    advance(chain, deadline - int(chain.pending_timestamp) + 1)
    job_id, inp, out = jobs[1]
    bond0 = int(dm.credits(node))
    dm.revealLeaf(batch_id, 1, job_id, inp, out, tree.proof(1), sender=node)
    assert int(dm.credits(node)) - bond0 == MOCK_MODEL.challenger_bond  # its own bond back
    advance(chain, MOCK_MODEL.challenge_window + 1)
    jm.finalizeBatch(batch_id, sender=outsider)
    t0 = token.balanceOf(a)
    cp.collect_leaf(pool, batch_id, 1, sender=a)
    assert token.balanceOf(a) - t0 == LEAF_FEE


def test_audit6_nodeSybilDisputesClaimedCorrectLeaf_claimantDefends_isPaidForIt(
    spotcheck: Any,
    pool: Any,  # noqa: F811
    batch: Any,  # noqa: F811
    registered: tuple[Any, Any],  # noqa: F811
    mock_verifier: Any,
    challenger: Any,
    node: Any,
    chain: Any,
) -> None:
    """Claimant A claimed leaf 3 (correct). The node's second address disputes it and the node
    stays silent; A proves the leaf and defends (``challenger.defence``; MockVerifier accepts
    for its valid proof). A keeps its collateral (A4-1 holds) but the bond the disputer posted
    is credited to the node: the node is whole (bond out of one pocket into the other) and A
    paid a proof and ~defend gas for nothing; repeated on every claimed leaf, a node taxes its
    checkers at zero cost (or outruns their provers: then the collateral burns). Safe: the
    disputer's bond pays whoever defended (or at least never returns to the disputed node)."""
    a, _ = registered
    batch_id, jobs, _ = batch
    dm = spotcheck.dispute_manager
    seed = _seed(chain, spotcheck, batch_id)
    cp.claim_leaves(pool, [_claim(KEY_A, seed, batch_id, 3)], sender=a)
    node_credits0, a_credits0 = int(dm.credits(node)), int(dm.credits(a))
    dispute_id = _dispute(spotcheck, batch, 3, challenger)
    advance(chain, MOCK_MODEL.proof_window - 5)  # the node stayed silent
    _, inp, out = jobs[3]
    dm.defend(dispute_id, b"proof", defence_instances(inp, out), out, sender=a)
    assert spotcheck.job_manager.batchLeafProven(batch_leaf_key(batch_id, 3))
    assert int(pool.getChallenger(a).bond) == MIN_BOND  # A4-1: the collateral is safe
    node_gain = int(dm.credits(node)) - node_credits0
    defender_gain = int(dm.credits(a)) - a_credits0
    assert (node_gain, defender_gain) == (0, MOCK_MODEL.challenger_bond)


def test_audit6_foreignLeafRequestOnClaimedLeaf_claimantCanRevealItself_keepsCollateral(
    spotcheck: Any,
    pool: Any,  # noqa: F811
    batch: Any,  # noqa: F811
    registered: tuple[Any, Any],  # noqa: F811
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """A6-4, the contract side (passes): a leaf request on a leaf A claimed, the node silent
    (offline, or colluding with the requester). ``revealLeaf`` is open to anyone, so A, which
    holds the leaf's data and path from its re-run, reveals it; the request cannot be settled
    and A's collateral is safe. Without the reveal (the challenger service today never reveals:
    tests/unit/test_audit6_challenger_leaf_requests.py) settleLeafRequest invalidates the leaf
    and forfeitLeaf burns A's collateral."""
    a, _ = registered
    batch_id, jobs, tree = batch
    dm = spotcheck.dispute_manager
    seed = _seed(chain, spotcheck, batch_id)
    cp.claim_leaves(pool, [_claim(KEY_A, seed, batch_id, 0)], sender=a)
    request_id = bytes(dm.requestLeaf(batch_id, 0, tree.root, sender=challenger).return_value)
    job_id, inp, out = jobs[0]
    dm.revealLeaf(batch_id, 0, job_id, inp, out, tree.proof(0), sender=a)
    advance(chain, MOCK_MODEL.proof_window + 1)
    with ape.reverts(dm.LeafRequestNotOpen):
        dm.settleLeafRequest(request_id, sender=outsider)
    assert not spotcheck.job_manager.batchLeafInvalid(batch_leaf_key(batch_id, 0))
    with ape.reverts(pool.LeafNotInvalid):
        pool.forfeitLeaf(batch_id, 0, a, sender=outsider)


def test_audit6_foreignLeafRequestOnClaimedLeaf_nobodyReveals_claimantLosesCollateral(
    spotcheck: Any,
    pool: Any,  # noqa: F811
    batch: Any,  # noqa: F811
    registered: tuple[Any, Any],  # noqa: F811
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """A6-4, the contract's rule (passes, as A4-1's): a correct leaf A claimed, an unanswered
    leaf request, settleLeafRequest: the leaf is invalid and forfeitLeaf burns A's collateral
    although A re-ran it and found it correct. Only a reveal by the claimant protects it."""
    a, _ = registered
    batch_id, _, tree = batch
    dm = spotcheck.dispute_manager
    seed = _seed(chain, spotcheck, batch_id)
    cp.claim_leaves(pool, [_claim(KEY_A, seed, batch_id, 4)], sender=a)
    request_id = bytes(dm.requestLeaf(batch_id, 4, tree.root, sender=challenger).return_value)
    advance(
        chain, int(dm.getLeafRequest(request_id).revealDeadline) - int(chain.pending_timestamp) + 1
    )
    dm.settleLeafRequest(request_id, sender=outsider)
    cp.forfeit_leaf(pool, batch_id, 4, a.address, sender=outsider)
    assert int(pool.getChallenger(a).bond) == MIN_BOND - COLLATERAL


def test_audit6_samplingTermsChangedAfterCommit_committedBatchStaysClaimable(
    spotcheck: Any,
    pool: Any,  # noqa: F811
    batch: Any,  # noqa: F811
    registered: tuple[Any, Any],  # noqa: F811
    deployer: Any,
    chain: Any,
) -> None:
    """The leaf fee is a per-batch snapshot; the sampling rate that decides who may claim is
    not. The registry owner (or a compromised key) turning a model's checks off after a batch
    is committed cancels its paid checks: the node's deposit comes back in full. Safe: a
    committed batch keeps the terms it was committed under."""
    a, _ = registered
    batch_id, _, _ = batch
    seed = _seed(chain, spotcheck, batch_id)
    claim = _claim(KEY_A, seed, batch_id, 0)
    cp.set_model_terms(pool, spotcheck.model_id, 2000, 0, sender=deployer)
    cp.claim_leaves(pool, [claim], sender=a)
    assert int(pool.getBatchDeposit(batch_id).claimedLeaves) == 1


def test_audit6_nodeCommitRetriedAfterLeafFeeRise_approvesTheNewDeposit(
    spotcheck: Any,
    pool: Any,  # noqa: F811
    node: Any,
    deployer: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """The node service commits a sealed batch under the intent ``commitBatch:local:<id>`` and
    retries it under the same intent until it lands; NodeChain.commit_batch approves the
    deposit under ``approveDeposit:<that intent>``. First attempt: the approval is mined, the
    commit reverts (here InsufficientStake: the node's stake is busy with a large batch).
    Then the registry owner raises the model's leaf fee (any change between attempts). The
    retry sees the allowance short and asks the TxSender for the same approval intent, which
    returns the journaled, mined approval of the OLD amount without sending: commitBatch
    reverts on the allowance, on every retry. Safe: the retry commits the batch."""
    from prover.chain_io import NodeChain

    token, jm, model = spotcheck.token, spotcheck.job_manager, spotcheck.model_id
    big = 97  # 9,700 of the node's 10,000 stake reserved (slash 100 per leaf)
    jm.commitBatch(model, b"\x07" * 32, big, "big", sender=node)
    token.approve(jm, 0, sender=node)
    nc = NodeChain(spotcheck.contracts, node)
    intent = "commitBatch:local:1"
    root = b"\x08" * 32
    with pytest.raises(ChainError, match="InsufficientStake"):
        nc.commit_batch(model, root, 5, "u", intent=intent)
    assert int(token.allowance(node, jm)) == 5 * LEAF_FEE  # the approval landed
    advance(chain, MOCK_MODEL.challenge_window + 1)
    jm.finalizeBatch(int(jm.batchCount()), sender=outsider)  # the stake is free again
    cp.set_leaf_check_fee(pool, model, 2 * LEAF_FEE, sender=deployer)
    _, batch_id, _ = nc.commit_batch(model, root, 5, "u", intent=intent)
    assert batch_id is not None
