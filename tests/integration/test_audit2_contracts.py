"""Audit 2: the per-node claim queue, leaf requests and reservations (anvil, MockVerifier).

Each test states the property that *should* hold. Tests of findings were
``xfail(strict=True)`` until the finding was fixed (A2-1: fixed by the in-flight bound
``claimBusyUntil``; the tests now pass unchanged but for the deadline they asserted). The others
are regression tests for attacks that turned out to be defended.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import ape
import pytest

from spotcheck.chain import TOKEN, DisputeStatus, LeafRequestStatus
from spotcheck.encoding import batch_leaf_key, hash_vector, leaf_hash
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import (
    JOB_INPUT,
    JOB_OUTPUT,
    MOCK_MODEL,
    NODE_STAKE,
    advance,
    defence_instances,
)

pytestmark = pytest.mark.chain
OUT_HASH = hash_vector(JOB_OUTPUT)
SLOW = MOCK_MODEL.proof_window  # 100 s
FAST = 20
BOND = MOCK_MODEL.challenger_bond
SLASH = MOCK_MODEL.slash_amount
INSTANCES = defence_instances(JOB_INPUT, JOB_OUTPUT)


@pytest.fixture
def fast_model(spotcheck: Any, register_model: Any, project: Any, deployer: Any) -> bytes:
    """A second model with a 20 s proof window, served by the same node."""
    fast = replace(MOCK_MODEL, proof_window=FAST)
    return bytes(register_model(deployer.deploy(project.MockVerifier), fast, tag=b"a2-fast"))


def _now(chain: Any) -> int:
    return int(chain.blocks.head.timestamp)


def _fund(spotcheck: Any, deployer: Any, who: Any, amount: int = 1_000 * TOKEN) -> None:
    spotcheck.token.mint(who, amount, sender=deployer)
    for spender in (spotcheck.stake_manager, spotcheck.job_manager, spotcheck.dispute_manager):
        spotcheck.token.approve(spender, 2**256 - 1, sender=who)


def _dispute(dm: Any, job_id: int, who: Any) -> bytes:
    return bytes(dm.openDispute(job_id, OUT_HASH, sender=who).return_value)


# -------------------------------------------------------------------------------------------
# A2-1: a third party's early defence takes a claim's work out of the queue while the honest
# node's (non-preemptible) proof of it is still running. Fixed: the close records
# ``claimBusyUntil(node) = min(deadline, now + proofWindow)`` and a new claim counts from it.


def test_audit2_thirdPartyDefendsClaimBeingProved_fastClaimOpened_honestNodeSlashed(
    spotcheck: Any,
    fast_model: bytes,
    make_job: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """Griefer = requester + challenger (+ a second address that can prove: the model, its
    settings and SRS are public, and the griefer knows the input it sent). The honest node
    serves a slow model (proof window 100 s, it proves in 60 s) and a fast one (window 20 s,
    it proves in 10 s): every proof well inside its own window.

    t0: the griefer disputes a slow job; the node starts proving it (one prover process).
    t0+2: the griefer defends that dispute itself with its own proof (anyone may defend; its
    bond goes to the node). The claim leaves the queue: ``openClaimWork == 0``.
    t0+2: the griefer disputes a fast job: deadline ``now + 0 + 20``. The node's prover is busy
    until t0+60 (the proof of the already-defended claim cannot be taken back), then proves the
    fast claim by t0+70 > its deadline: slashed although every answer was right.

    Property: an honest node proving one claim at a time, earliest deadline first, each within
    its model's window, is never slashed."""
    dm, sm = spotcheck.dispute_manager, spotcheck.stake_manager
    slow_job = make_job()
    fast_job = make_job(model_id=fast_model)
    prove_slow, prove_fast = 60, 10  # the node's proving times: 60 % and 50 % of the windows

    d_slow = _dispute(dm, slow_job, challenger)
    t0 = _now(chain)
    node_busy_until = t0 + prove_slow  # the node starts proving the slow claim at once

    chain.mine(1, timestamp=t0 + 2)
    dm.defend(d_slow, b"griefer-proof", INSTANCES, JOB_OUTPUT, sender=outsider)
    assert dm.getDispute(d_slow).status == DisputeStatus.DEFENDED
    assert dm.openClaimWork(node) == 0  # the node is still proving it
    # Fixed: the node may be busy with the slow claim until its deadline (t0 + 100, earlier
    # than now + 100), and the fast claim counts from there.
    assert dm.claimBusyUntil(node) == t0 + SLOW

    d_fast = _dispute(dm, fast_job, challenger)
    deadline = int(dm.getDispute(d_fast).proofDeadline)
    assert deadline == t0 + SLOW + FAST  # was now + FAST: the bug

    # The honest node: its prover frees at t0+60, then proves the fast claim in 10 s.
    done = node_busy_until + prove_fast
    stake_before = sm.stakeOf(node).amount
    if done <= deadline:
        chain.mine(1, timestamp=done)
        dm.defend(d_fast, b"p", INSTANCES, JOB_OUTPUT, sender=node)
    else:
        chain.mine(1, timestamp=done)
        with ape.reverts(dm.ProofDeadlinePassed):
            dm.defend(d_fast, b"p", INSTANCES, JOB_OUTPUT, sender=node)
        dm.settle(d_fast, sender=challenger)
    assert dm.getDispute(d_fast).status == DisputeStatus.DEFENDED, (
        f"fast claim's deadline {deadline - t0} s after t0, the honest node's prover was busy "
        f"until {node_busy_until - t0} s: slashed {stake_before - sm.stakeOf(node).amount}"
    )


def test_audit2_thirdPartyDefence_oneModel_nodeProvingIn60PercentOfWindow_isSlashed(
    spotcheck: Any,
    make_job: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """The same with one model (window 100 s, proofs in 60 s): dispute A at t0 (the node
    starts proving it), the griefer defends A at t0+1 and disputes B at once: B's deadline is
    t0+101, the node is free at t0+60 and done with B at t0+120."""
    dm = spotcheck.dispute_manager
    a, b = make_job(), make_job(input=[5, 6, 7, 8])
    prove = 60
    d_a = _dispute(dm, a, challenger)
    t0 = _now(chain)
    chain.mine(1, timestamp=t0 + 1)
    dm.defend(d_a, b"griefer-proof", INSTANCES, JOB_OUTPUT, sender=outsider)
    d_b = _dispute(dm, b, challenger)
    deadline = int(dm.getDispute(d_b).proofDeadline)
    done = t0 + prove + prove  # A's proof (wasted), then B's
    assert done <= deadline, (
        f"B's deadline t0+{deadline - t0}; the honest node proving A then B finishes at "
        f"t0+{done - t0}"
    )


# -------------------------------------------------------------------------------------------
# A2-3 (low, documented limitation understated): sybil leaf requests stretch the queue for free.


def _own_batch(spotcheck: Any, node: Any, seed: int, n: int = 4) -> tuple[int, list[Any], Any]:
    jobs = [(seed + i, [i, seed, 0, 1], [seed, i]) for i in range(n)]
    tree = MerkleTree(
        [leaf_hash(j, spotcheck.model_id, hash_vector(a), hash_vector(b)) for j, a, b in jobs]
    )
    receipt = spotcheck.job_manager.commitBatch(spotcheck.model_id, tree.root, n, "", sender=node)
    return int(receipt.return_value), jobs, tree


def test_audit2_sybilLeafRequests_stretchHonestDeadline_atZeroTokenCost_butNoEscape(
    spotcheck: Any,
    deployer: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """A cheater's second address requests k of the cheater's own (honest) leaves; the
    cheater reveals each just before its deadline and gets every bond back as credit (no
    proofs, unlike the self-disputes security.md prices at "k bonds and k proofs"). An honest
    challenger disputing the cheater's wrong leaf meanwhile waits k + 1 windows. Held: the
    wrong leaf is never final and its batch's reservation stays locked until the dispute is
    settled, and the slash is taken in full."""
    dm, jm, sm = spotcheck.dispute_manager, spotcheck.job_manager, spotcheck.stake_manager
    sybil = outsider
    _fund(spotcheck, deployer, sybil)
    k = 4
    own_id, own_jobs, own_tree = _own_batch(spotcheck, node, 700)
    wrong_id, wrong_jobs, wrong_tree = _own_batch(spotcheck, node, 800)
    sybil_before = spotcheck.token.balanceOf(sybil)
    for i in range(k):
        dm.requestLeaf(own_id, i, own_tree.root, sender=sybil)
    assert dm.openClaimWork(node) == k * SLOW
    job_id, inp, out = wrong_jobs[2]
    did = bytes(
        dm.openBatchDispute(
            wrong_id,
            2,
            job_id,
            hash_vector(inp),
            hash_vector(out),
            wrong_tree.proof(2),
            sender=challenger,
        ).return_value
    )
    t = _now(chain)
    deadline = int(dm.getDispute(did).proofDeadline)
    assert deadline == t + (k + 1) * SLOW  # stretched k windows
    # The cheater reveals each sybil request just before its deadline: bonds come back.
    for i in range(k):
        rid = batch_leaf_key(own_id, i)
        chain.mine(1, timestamp=int(dm.getLeafRequest(rid).revealDeadline) - 1)
        j, a, b = own_jobs[i]
        dm.revealLeaf(own_id, i, j, a, b, own_tree.proof(i), sender=node)
    assert dm.credits(node) == k * BOND  # the operator's tokens: net cost 0 (gas only)
    assert spotcheck.token.balanceOf(sybil) == sybil_before - k * BOND
    # No escape: the wrong leaf's batch cannot finalize, the reservation stays locked.
    assert not jm.isBatchLeafFinal(wrong_id, 2)
    with ape.reverts(jm.ClaimsPending):
        jm.finalizeBatch(wrong_id, sender=outsider)
    chain.mine(1, timestamp=deadline + 1)
    locked = sm.stakeOf(node).locked
    dm.settle(did, sender=challenger)
    assert sm.stakeOf(node).locked == locked - SLASH
    assert sm.stakeOf(node).amount == NODE_STAKE - SLASH
    assert not jm.isBatchLeafFinal(wrong_id, 2)
    assert dm.openClaimsOf(node) == 0 and dm.openClaimWork(node) == 0


def test_audit2_revealOfAnotherLeafOrBatch_refused_andRequestedLeafNeverFinalWhileOpen(
    spotcheck: Any, node: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    """Held: a reveal must be the leaf at the requested index of the requested batch (another
    index's data, or the same data under another batch id, is refused); the batch cannot
    finalize past its challenge window while the request is open; settling it slashes one
    slash from this batch's reservation only; the queue drains to zero."""
    dm, jm, sm = spotcheck.dispute_manager, spotcheck.job_manager, spotcheck.stake_manager
    a_id, a_jobs, a_tree = _own_batch(spotcheck, node, 900)
    b_id, _, b_tree = _own_batch(spotcheck, node, 900)  # same leaves, another batch
    rid = bytes(dm.requestLeaf(a_id, 1, a_tree.root, sender=challenger).return_value)
    j, a, b = a_jobs[0]
    with ape.reverts(dm.InvalidMerkleProof):
        dm.revealLeaf(a_id, 1, j, a, b, a_tree.proof(0), sender=node)
    j, a, b = a_jobs[1]
    with ape.reverts(dm.UnknownLeafRequest):
        dm.revealLeaf(b_id, 1, j, a, b, b_tree.proof(1), sender=node)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    with ape.reverts(jm.ClaimsPending):
        jm.finalizeBatch(a_id, sender=outsider)
    assert not jm.isBatchLeafFinal(a_id, 1)
    chain.mine(1, timestamp=max(_now(chain), int(dm.getLeafRequest(rid).revealDeadline)) + 1)
    locked = sm.stakeOf(node).locked
    dm.settleLeafRequest(rid, sender=outsider)
    assert dm.getLeafRequest(rid).status == LeafRequestStatus.SLASHED
    assert sm.stakeOf(node).locked == locked - SLASH
    assert jm.getBatch(a_id).reserved == 3 * SLASH
    assert jm.getBatch(b_id).reserved == 4 * SLASH
    jm.finalizeBatch(a_id, sender=outsider)
    assert not jm.isBatchLeafFinal(a_id, 1) and jm.isBatchLeafFinal(a_id, 0)
    assert dm.openClaimsOf(node) == 0 and dm.openClaimWork(node) == 0
