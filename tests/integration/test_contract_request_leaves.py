"""``DisputeManager.requestLeaves``: a batch's sampled leaves requested in one transaction.

The same rules as ``requestLeaf`` per leaf (one shared internal function), one bond transfer
for the leaves actually opened, and a leaf that already has a request or a dispute (another
challenger got there first, or the index repeats) skipped instead of reverting the call."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from challenger.chain_io import MAX_LEAVES_PER_REQUEST
from spotcheck.chain import LeafRequestStatus
from spotcheck.encoding import batch_leaf_key, hash_vector
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import (
    MOCK_MODEL,
    NODE_STAKE,
    BatchJobs,
    advance,
    batch_jobs,
    commit_test_batch,
)

pytestmark = pytest.mark.chain
SLASH = MOCK_MODEL.slash_amount
BOND = MOCK_MODEL.challenger_bond
BOUNTY = SLASH * MOCK_MODEL.bounty_bps // 10_000
WINDOW = MOCK_MODEL.proof_window
COUNT = 40


@pytest.fixture
def batch(spotcheck: Any, node: Any) -> tuple[int, BatchJobs, MerkleTree]:
    """A committed batch of 40 leaves (jobIds 100..139): more than one call's 32."""
    jobs = batch_jobs(COUNT)
    batch_id, tree = commit_test_batch(spotcheck, node, jobs)
    return batch_id, jobs, tree


def _pulls(spotcheck: Any, receipt: Any, sender: Any) -> list[int]:
    """The bond transfers of ``receipt``: token moves from ``sender`` to DisputeManager."""
    dm = spotcheck.dispute_manager
    return [
        int(ev.value)
        for ev in receipt.events.filter(spotcheck.token.Transfer)
        if ev["from"] == sender and ev.to == dm.address
    ]


def _block_time(chain: Any, receipt: Any) -> int:
    return int(chain.blocks[receipt.block_number].timestamp)


def test_maxLeavesPerRequest_is32_andTheChallengerUsesTheSame(spotcheck: Any) -> None:
    assert spotcheck.dispute_manager.MAX_LEAVES_PER_REQUEST() == MAX_LEAVES_PER_REQUEST == 32


def test_requestLeaves_opensTheSameRequestsAsSingleCalls_bondPulledOnce(
    batch: Any, spotcheck: Any, node: Any, challenger: Any, chain: Any
) -> None:
    """Per leaf, in the order given: the queue's reveal deadlines, the event, the batch's open
    claims and bondAtRisk are what one requestLeaf each would give; the bond moves once."""
    batch_id, _, tree = batch
    dm, jm, token = spotcheck.dispute_manager, spotcheck.job_manager, spotcheck.token
    order = [3, 0, 17]

    with chain.isolate():
        singles = [dm.requestLeaf(batch_id, i, tree.root, sender=challenger) for i in order]
        single = {
            i: (
                int(dm.getLeafRequest(batch_leaf_key(batch_id, i)).revealDeadline)
                - _block_time(chain, r)
            )
            for i, r in zip(order, singles, strict=True)
        }
        single_at_risk = int(dm.bondAtRisk(challenger))
        single_work = int(dm.openClaimWork(node))
        assert [len(_pulls(spotcheck, r, challenger)) for r in singles] == [1, 1, 1]

    before = token.balanceOf(challenger)
    receipt = dm.requestLeaves(batch_id, order, tree.root, sender=challenger)
    assert receipt.return_value == 3
    t = _block_time(chain, receipt)
    events = list(receipt.events.filter(dm.LeafRequested))
    assert [int(ev.index) for ev in events] == order
    for k, (ev, i) in enumerate(zip(events, order, strict=True)):
        request_id = batch_leaf_key(batch_id, i)
        r = dm.getLeafRequest(request_id)
        assert bytes(ev.requestId) == request_id
        assert (ev.batchId, ev.node, ev.requester, ev.bond) == (batch_id, node, challenger, BOND)
        assert r.status == LeafRequestStatus.OPEN and r.requester == challenger
        assert r.revealDeadline == ev.revealDeadline == t + (k + 1) * WINDOW
        # The same queue position a single call in that order got (relative to its block).
        assert int(r.revealDeadline) - t == single[i]
    assert int(dm.bondAtRisk(challenger)) == single_at_risk == 3 * BOND
    assert int(dm.openClaimWork(node)) == single_work == 3 * WINDOW
    assert dm.openClaimsOf(node) == 3 and jm.getBatch(batch_id).openClaims == 3
    assert _pulls(spotcheck, receipt, challenger) == [3 * BOND]  # one transfer for all three
    assert token.balanceOf(challenger) == before - 3 * BOND


def test_requestLeaves_skipsRequestedDisputedAndRepeatedLeaves(
    batch: Any, spotcheck: Any, node: Any, challenger: Any, requester: Any
) -> None:
    """Another challenger got to leaf 1 (a request) and leaf 2 (a dispute) first, and the list
    repeats leaf 0: only 0 and 3 open, once each, and only their bonds move."""
    batch_id, jobs, tree = batch
    dm = spotcheck.dispute_manager
    dm.requestLeaf(batch_id, 1, tree.root, sender=requester)
    job_id, inp, out = jobs[2]
    dm.openBatchDispute(
        batch_id, 2, job_id, hash_vector(inp), hash_vector(out), tree.proof(2), sender=requester
    )
    receipt = dm.requestLeaves(batch_id, [0, 1, 2, 0, 3], tree.root, sender=challenger)
    assert receipt.return_value == 2
    assert [int(ev.index) for ev in receipt.events.filter(dm.LeafRequested)] == [0, 3]
    assert _pulls(spotcheck, receipt, challenger) == [2 * BOND]
    assert dm.getLeafRequest(batch_leaf_key(batch_id, 1)).requester == requester
    assert dm.getLeafRequest(batch_leaf_key(batch_id, 2)).status == LeafRequestStatus.NONE
    assert int(dm.bondAtRisk(challenger)) == 2 * BOND
    assert int(dm.bondAtRisk(requester)) == 2 * BOND  # its request and its dispute
    assert dm.openClaimsOf(node) == 4

    # All claimed already: nothing opens, nothing moves, and the call does not revert.
    again = dm.requestLeaves(batch_id, [0, 1, 2, 3], tree.root, sender=challenger)
    assert again.return_value == 0
    assert list(again.events.filter(dm.LeafRequested)) == []
    assert _pulls(spotcheck, again, challenger) == []
    assert int(dm.bondAtRisk(challenger)) == 2 * BOND


def test_requestLeaves_refusedCases_revertWholeCall(
    batch: Any, spotcheck: Any, node: Any, challenger: Any, chain: Any
) -> None:
    batch_id, _, tree = batch
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    with ape.reverts(dm.NoLeaves):
        dm.requestLeaves(batch_id, [], tree.root, sender=challenger)
    with ape.reverts(dm.TooManyLeaves, n=33, max=32):
        dm.requestLeaves(batch_id, list(range(33)), tree.root, sender=challenger)
    with ape.reverts(dm.RootMismatch, batchId=batch_id, given=b"\x07" * 32, stored=tree.root):
        dm.requestLeaves(batch_id, [0, 1], b"\x07" * 32, sender=challenger)
    with ape.reverts(dm.SelfDispute, node=node):
        dm.requestLeaves(batch_id, [0, 1], tree.root, sender=node)
    with ape.reverts(jm.UnknownBatch, batchId=99):
        dm.requestLeaves(99, [0], tree.root, sender=challenger)
    # One index out of range reverts the call: the leaves before it do not stay open.
    with ape.reverts(dm.IndexOutOfRange, batchId=batch_id, index=COUNT, count=COUNT):
        dm.requestLeaves(batch_id, [0, 1, COUNT], tree.root, sender=challenger)
    assert dm.openClaimsOf(node) == 0 and int(dm.bondAtRisk(challenger)) == 0
    # 32 is allowed (the whole 40-leaf batch takes two calls).
    assert (
        dm.requestLeaves(batch_id, list(range(32)), tree.root, sender=challenger).return_value == 32
    )
    rest = dm.requestLeaves(batch_id, list(range(30, COUNT)), tree.root, sender=challenger)
    assert rest.return_value == COUNT - 32  # 30 and 31 were in the first call
    assert dm.openClaimsOf(node) == COUNT
    deadline = jm.getBatch(batch_id).challengeDeadline
    advance(chain, MOCK_MODEL.challenge_window + 1)
    with ape.reverts(dm.ChallengeWindowClosed, deadline=deadline):
        dm.requestLeaves(batch_id, [35], tree.root, sender=challenger)


def test_requestLeaves_eachLeafRevealedOrSettledOnItsOwn(
    batch: Any,
    spotcheck: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """A node that reveals each leaf gets each bond; a leaf left unrevealed is settled alone
    (one slash, bond back and bounty to the requester), the others untouched."""
    batch_id, jobs, tree = batch
    dm, jm, sm = spotcheck.dispute_manager, spotcheck.job_manager, spotcheck.stake_manager
    dm.requestLeaves(batch_id, [4, 5, 6], tree.root, sender=challenger)
    for i in (4, 6):
        job_id, inp, out = jobs[i]
        dm.revealLeaf(batch_id, i, job_id, inp, out, tree.proof(i), sender=node)
        assert dm.getLeafRequest(batch_leaf_key(batch_id, i)).status == LeafRequestStatus.REVEALED
    assert dm.credits(node) == 2 * BOND
    assert int(dm.bondAtRisk(challenger)) == BOND
    assert jm.getBatch(batch_id).openClaims == 1
    unrevealed = batch_leaf_key(batch_id, 5)
    deadline = int(dm.getLeafRequest(unrevealed).revealDeadline)
    with ape.reverts(dm.RevealDeadlineNotPassed, requestId=unrevealed, deadline=deadline):
        dm.settleLeafRequest(unrevealed, sender=outsider)
    chain.mine(1, timestamp=deadline + 1)
    receipt = dm.settleLeafRequest(unrevealed, sender=outsider)
    [settled] = receipt.events.filter(dm.LeafRequestSettled)
    assert (settled.slashed, settled.bounty, settled.burned) == (SLASH, BOUNTY, SLASH - BOUNTY)
    assert dm.credits(challenger) == BOND + BOUNTY and int(dm.bondAtRisk(challenger)) == 0
    assert sm.stakeOf(node).amount == NODE_STAKE - SLASH
    assert jm.batchLeafInvalid(unrevealed)
    assert not jm.batchLeafInvalid(batch_leaf_key(batch_id, 4))
    assert dm.openClaimsOf(node) == 0
