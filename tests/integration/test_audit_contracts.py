"""Audit (v2): contract-level attacks on the proof queue and leaf requests.

Each test states the property that *should* hold. The findings' tests were
``xfail(strict=True)`` until the contracts were fixed (per-node queue over open claims,
``requestLeaf`` names its root, liveness failures only at the current price); the others add
coverage the existing suite lacks.
"""

from __future__ import annotations

from typing import Any

import ape
import pytest

from spotcheck.chain import TOKEN, DisputeStatus, LeafRequestStatus
from spotcheck.encoding import batch_leaf_key, hash_vector, leaf_hash
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import MOCK_MODEL, NODE_STAKE, advance, defence_instances
from tests.integration.test_contract_disputes import batch  # noqa: F401 - fixture

pytestmark = pytest.mark.chain
WINDOW = MOCK_MODEL.proof_window
BOND = MOCK_MODEL.challenger_bond
SLASH = MOCK_MODEL.slash_amount


def _fund(spotcheck: Any, deployer: Any, who: Any, amount: int = 1_000 * TOKEN) -> None:
    spotcheck.token.mint(who, amount, sender=deployer)
    for spender in (spotcheck.stake_manager, spotcheck.job_manager, spotcheck.dispute_manager):
        spotcheck.token.approve(spender, 2**256 - 1, sender=who)


def _dispute_leaf(spotcheck: Any, batch: Any, index: int, sender: Any) -> bytes:  # noqa: F811
    batch_id, jobs, tree = batch
    job_id, inp, out = jobs[index]
    return bytes(
        spotcheck.dispute_manager.openBatchDispute(
            batch_id,
            index,
            job_id,
            hash_vector(inp),
            hash_vector(out),
            tree.proof(index),
            sender=sender,
        ).return_value
    )


def test_audit_sybilSelfDisputes_defendedAtOnce_stillStretchHonestChallengersDeadline(
    batch: Any,  # noqa: F811
    spotcheck: Any,
    deployer: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """A cheating node (leaf 4 is its wrong answer) has its second address dispute its own
    honest leaves 0..3 and defends each at once: the bonds flow back to the node (net cost:
    gas and proofs only) and no dispute against it stays open. The queue (v1 of v2:
    ``proofQueueEnd``) kept all four windows, so the honest challenger who disputed leaf 4
    waited 5 proof windows to settle, its bond locked meanwhile (a challenger's
    ``max_bond_at_risk`` cap fills, and it defers disputes against every node). Repeated over
    batches the delay was unbounded. Now the queue counts open claims only
    (``openClaimsOf``)."""
    dm, sm = spotcheck.dispute_manager, spotcheck.stake_manager
    sybil = outsider
    _fund(spotcheck, deployer, sybil)
    _, jobs, _ = batch
    k = 4
    for i in range(k):
        did = _dispute_leaf(spotcheck, batch, i, sybil)
        _, inp, out = jobs[i]
        dm.defend(did, b"p", defence_instances(inp, out), out, sender=node)  # at once
    # The sybil lost its bonds to the node: the same operator, so nothing was spent.
    assert dm.credits(node) == k * BOND
    assert sm.stakeOf(node).openDisputes == 0  # nothing against the node is open
    assert dm.openClaimsOf(node) == 0
    honest = _dispute_leaf(spotcheck, batch, 4, challenger)
    d = dm.getDispute(honest)
    now = chain.blocks.head.timestamp
    assert d.status == DisputeStatus.OPEN
    # Property: with no other dispute open against the node, one proof window suffices.
    assert d.proofDeadline <= now + WINDOW, (
        f"honest dispute waits {(d.proofDeadline - now) // WINDOW} proof windows"
    )


def test_audit_leafRequestsAtOnce_shareOneRevealWindow(
    batch: Any,  # noqa: F811
    spotcheck: Any,
    challenger: Any,
    chain: Any,
) -> None:
    """A griefer requests every leaf of an honest node's batch at once: each reveal deadline
    is ``now + proofWindow``, whatever the number of requests. The node must land k reveal
    transactions (each up to 2 x MAX_VECTOR_LEN words of calldata and log data) inside one
    window; disputes got a per-node queue for exactly this reason (v2 rule 6), requests did
    not. Property: the k-th simultaneous request gets k windows, like disputes."""
    batch_id, jobs, tree = batch
    dm = spotcheck.dispute_manager
    w3 = chain.provider.web3
    nonce = w3.eth.get_transaction_count(challenger.address)
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        for i in range(len(jobs)):
            data = dm.requestLeaf.encode_input(batch_id, i, tree.root)
            tx = {"from": challenger.address, "to": dm.address, "data": data}
            w3.eth.send_transaction({**tx, "nonce": nonce + i, "gas": 600_000})
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    deadlines = [dm.getLeafRequest(batch_leaf_key(batch_id, i)).revealDeadline for i in range(5)]
    assert all(
        dm.getLeafRequest(batch_leaf_key(batch_id, i)).status == LeafRequestStatus.OPEN
        for i in range(5)
    )
    assert deadlines == sorted(deadlines)
    assert deadlines[-1] >= deadlines[0] + (len(jobs) - 1) * WINDOW, deadlines


def test_audit_singleLeafBatch_requestRevealDisputeDefend_andFinalizeAfterRevealWindow(
    spotcheck: Any, node: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    """Sound: count = 1 (depth 0, empty proof, root = leaf): a request, a reveal with the empty
    proof, a dispute on the revealed leaf after the batch window, its defence; no index 1;
    the batch cannot finalize before the revealed leaf's dispute deadline; stake released."""
    dm, jm, sm = spotcheck.dispute_manager, spotcheck.job_manager, spotcheck.stake_manager
    inp, out = [1, 2, 3, 4], [5, 6]
    leaf = leaf_hash(7, spotcheck.model_id, hash_vector(inp), hash_vector(out))
    assert MerkleTree([leaf]).root == leaf
    batch_id = int(jm.commitBatch(spotcheck.model_id, leaf, 1, "u", sender=node).return_value)
    with ape.reverts(dm.IndexOutOfRange, batchId=batch_id, index=1, count=1):
        dm.requestLeaf(batch_id, 1, leaf, sender=challenger)
    assert not jm.verifyBatchLeaf(batch_id, 1, leaf, [])
    assert not jm.verifyBatchLeaf(batch_id, 0, leaf, [leaf])  # proof longer than depth 0
    advance(chain, MOCK_MODEL.challenge_window - 5)
    rid = bytes(dm.requestLeaf(batch_id, 0, leaf, sender=challenger).return_value)
    # Revealed with an out-of-range index: refused; with a wrong job id: refused.
    with ape.reverts(dm.UnknownLeafRequest):
        dm.revealLeaf(batch_id, 1, 7, inp, out, [], sender=node)
    with ape.reverts(dm.InvalidMerkleProof, batchId=batch_id, index=0):
        dm.revealLeaf(batch_id, 0, 8, inp, out, [], sender=node)
    advance(chain, WINDOW - 5)
    dm.revealLeaf(batch_id, 0, 7, inp, out, [], sender=outsider)  # anyone may reveal
    r = dm.getLeafRequest(rid)
    assert r.status == LeafRequestStatus.REVEALED
    assert jm.getBatch(batch_id).finalAfter == r.disputeDeadline
    with ape.reverts(dm.LeafRequestExists, requestId=rid):
        dm.requestLeaf(batch_id, 0, leaf, sender=outsider)  # request after reveal
    advance(chain, MOCK_MODEL.challenge_window - 5)  # past the batch window, inside the leaf's
    did = bytes(
        dm.openBatchDispute(
            batch_id, 0, 7, hash_vector(inp), hash_vector(out), [], sender=challenger
        ).return_value
    )
    with ape.reverts(jm.ClaimsPending, batchId=batch_id, openClaims=1):
        advance(chain, 10)
        jm.finalizeBatch(batch_id, sender=outsider)
    dm.defend(did, b"p", defence_instances(inp, out), out, sender=outsider)
    assert jm.isBatchLeafFinal(batch_id, 0) and not jm.isBatchLeafFinal(batch_id, 1)
    jm.finalizeBatch(batch_id, sender=outsider)
    s = sm.stakeOf(node)
    assert s.locked == 0 and s.amount == NODE_STAKE


def test_audit_requestBeforePriceRise_ignoredByNode_stillCountsLivenessFailure(
    spotcheck: Any, node: Any, requester: Any, chain: Any
) -> None:
    """docs/node-operators.md ("Prices"): a request below the node's price "(the price was
    raised after it was made) is ignored: no commit, no stake locked, and it counts as no
    liveness failure". ``cancelJob`` counts one whenever the model is active. A griefer who
    sees the node's ``setPrice`` raise in the mempool front-runs it with requests at the old
    price; the node ignores them (prover.service._commit_job) and every cancel counts."""
    jm = spotcheck.job_manager
    price = 5 * TOKEN
    jm.setPrice(spotcheck.model_id, price, sender=node)
    job_id = int(
        jm.requestJob(spotcheck.model_id, [1, 2, 3, 4], node, price, sender=requester).return_value
    )
    jm.setPrice(spotcheck.model_id, 2 * price, sender=node)  # mined after the request
    before = jm.livenessFailures(node)
    advance(chain, 101)  # past commitTimeout: the node ignored the underpriced request
    jm.cancelJob(job_id, sender=requester)
    assert jm.livenessFailures(node) == before


def test_audit_reorg_movesLeafRequestOntoAnotherNodesBatch(
    spotcheck: Any, node: Any, node2: Any, challenger: Any, chain: Any
) -> None:
    """v2 binds every other claim to what it names (commitResult: inputHash; openDispute:
    outputHash; openBatchDispute: the Merkle proof). ``requestLeaf(batchId, index)`` named
    only the id. The challenger decided to request leaf 0 of node's batch (root R); after a
    reorg batch id 1 is node2's, and the request, bond and the reveal's bond payment went
    there. Now ``requestLeaf(batchId, index, root)`` names the root and reverts
    ``RootMismatch`` on node2's batch; the challenger's bond stays with it."""
    jm, dm = spotcheck.job_manager, spotcheck.dispute_manager
    inp, out = [1, 2, 3, 4], [5, 6]
    target = leaf_hash(1, spotcheck.model_id, hash_vector(inp), hash_vector(out))
    fork = chain.snapshot()
    batch_id = int(jm.commitBatch(spotcheck.model_id, target, 1, "a", sender=node).return_value)
    chain.restore(fork)  # reorg: node2's commitBatch lands first in the new branch
    other = leaf_hash(2, spotcheck.model_id, hash_vector(inp), hash_vector(out))
    assert (
        int(jm.commitBatch(spotcheck.model_id, other, 1, "b", sender=node2).return_value)
        == batch_id
    )
    jm.commitBatch(spotcheck.model_id, target, 1, "a", sender=node)
    bond_before = spotcheck.token.balanceOf(challenger)
    with ape.reverts(dm.RootMismatch, batchId=batch_id, given=target, stored=other):
        dm.requestLeaf(batch_id, 0, target, sender=challenger)  # meant for root `target`
    r = dm.getLeafRequest(batch_leaf_key(batch_id, 0))
    assert r.node != node2, f"the request landed on {r.node}'s batch"
    assert spotcheck.token.balanceOf(challenger) == bond_before
    # The node's batch (the next id in this branch) takes the request.
    dm.requestLeaf(batch_id + 1, 0, target, sender=challenger)
    assert dm.getLeafRequest(batch_leaf_key(batch_id + 1, 0)).node == node
