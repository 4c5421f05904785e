"""Disputes through Ape on anvil (MockVerifier): open, defend, settle, batch leaves, slashing."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from spotcheck.chain import TOKEN, DisputeStatus, JobKind, JobStatus
from spotcheck.encoding import BN254_R, batch_job_key, hash_vector, leaf_hash, onchain_job_key
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import (
    JOB_FEE,
    JOB_INPUT,
    JOB_OUTPUT,
    MOCK_MODEL,
    NODE_STAKE,
    TEST_PARAMS,
    advance,
    defence_instances,
)

pytestmark = pytest.mark.chain
BURN = "0x000000000000000000000000000000000000dEaD"
SLASH = MOCK_MODEL.slash_amount
BOND = MOCK_MODEL.challenger_bond
BOUNTY = SLASH * MOCK_MODEL.bounty_bps // 10_000
#: What the circuit "computed" in these tests: within tau = 2 of JOB_OUTPUT.
PROVEN = [11, -18]
GOOD_INSTANCES = defence_instances(JOB_INPUT, PROVEN)


@pytest.fixture
def disputed(make_job: Any, spotcheck: Any, challenger: Any) -> tuple[int, bytes]:
    job_id = make_job()
    receipt = spotcheck.dispute_manager.openDispute(job_id, sender=challenger)
    return job_id, bytes(receipt.return_value)


def test_openDispute_locksBondAndMarksJobDisputed(
    make_job: Any, spotcheck: Any, node: Any, challenger: Any
) -> None:
    dm, token = spotcheck.dispute_manager, spotcheck.token
    job_id = make_job()
    before = token.balanceOf(challenger)
    receipt = dm.openDispute(job_id, sender=challenger)
    dispute_id = bytes(receipt.return_value)
    assert dispute_id == onchain_job_key(job_id)
    d = dm.getDispute(dispute_id)
    assert d.status == DisputeStatus.OPEN and d.kind == JobKind.ONCHAIN
    assert d.node == node and d.challenger == challenger and d.bond == BOND
    assert d.inputHash == hash_vector(JOB_INPUT) and d.outputHash == hash_vector(JOB_OUTPUT)
    assert token.balanceOf(challenger) == before - BOND
    assert dm.bondAtRisk(challenger) == BOND
    assert spotcheck.job_manager.getJob(job_id).status == JobStatus.DISPUTED
    assert spotcheck.stake_manager.stakeOf(node).openDisputes == 1
    [event] = receipt.events.filter(dm.DisputeOpened)
    assert event.proofDeadline == d.proofDeadline


def test_defend_validProof_finalizesJob_andPaysBondToNode(
    disputed: tuple[int, bytes], spotcheck: Any, node: Any, challenger: Any
) -> None:
    job_id, dispute_id = disputed
    dm, jm, sm = spotcheck.dispute_manager, spotcheck.job_manager, spotcheck.stake_manager
    dm.defend(dispute_id, b"proof", GOOD_INSTANCES, JOB_OUTPUT, sender=node)
    assert dm.getDispute(dispute_id).status == DisputeStatus.DEFENDED
    assert jm.getJob(job_id).status == JobStatus.FINAL and jm.isJobFinal(job_id)
    assert dm.credits(node) == BOND and jm.credits(node) == JOB_FEE
    assert dm.bondAtRisk(challenger) == 0
    assert sm.stakeOf(node).openDisputes == 0 and sm.stakeOf(node).locked == 0
    assert spotcheck.mock_verifier.calls() == 1
    before = spotcheck.token.balanceOf(node)
    dm.withdrawCredits(sender=node)
    assert spotcheck.token.balanceOf(node) == before + BOND


def test_defend_exactlyTauAway_isAccepted(
    disputed: tuple[int, bytes], spotcheck: Any, node: Any
) -> None:
    _, dispute_id = disputed
    tau = MOCK_MODEL.tau
    instances = defence_instances(JOB_INPUT, [JOB_OUTPUT[0] + tau, JOB_OUTPUT[1] - tau])
    spotcheck.dispute_manager.defend(dispute_id, b"p", instances, JOB_OUTPUT, sender=node)
    assert spotcheck.dispute_manager.getDispute(dispute_id).status == DisputeStatus.DEFENDED


def test_defend_outputBeyondTau_reverts(
    disputed: tuple[int, bytes], spotcheck: Any, node: Any
) -> None:
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    instances = defence_instances(JOB_INPUT, [JOB_OUTPUT[0], JOB_OUTPUT[1] - 3])
    with ape.reverts(dm.OutputOutsideTolerance, index=1, proven=-23, committed=-20, tau=2):
        dm.defend(dispute_id, b"p", instances, JOB_OUTPUT, sender=node)


def test_defend_proofForAnotherInput_reverts(
    disputed: tuple[int, bytes], spotcheck: Any, node: Any
) -> None:
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    instances = defence_instances([1, -2, 3, 5], PROVEN)
    with ape.reverts(dm.InputMismatch, disputeId=dispute_id):
        dm.defend(dispute_id, b"p", instances, JOB_OUTPUT, sender=node)


def test_defend_committedOutputNotTheCommitment_reverts(
    disputed: tuple[int, bytes], spotcheck: Any, node: Any
) -> None:
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    with ape.reverts(dm.OutputMismatch, disputeId=dispute_id):
        dm.defend(dispute_id, b"p", GOOD_INSTANCES, PROVEN, sender=node)


def test_defend_wrongInstanceCount_reverts(
    disputed: tuple[int, bytes], spotcheck: Any, node: Any
) -> None:
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    with ape.reverts(dm.WrongInstanceCount, have=5, need=6):
        dm.defend(dispute_id, b"p", GOOD_INSTANCES[:5], JOB_OUTPUT, sender=node)


def test_defend_instanceNotAFieldElement_reverts(
    disputed: tuple[int, bytes], spotcheck: Any, node: Any
) -> None:
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    # x + r is the same field element as x to a verifier that reduces; the contract refuses it.
    aliased = [GOOD_INSTANCES[0] + BN254_R, *GOOD_INSTANCES[1:]]
    with ape.reverts(dm.InstanceOutOfField, index=0, value=aliased[0]):
        dm.defend(dispute_id, b"p", aliased, JOB_OUTPUT, sender=node)


@pytest.mark.parametrize("mode", [1, 2, 3], ids=["returnsFalse", "reverts", "burnsGas"])
def test_defend_verifierRejects_revertsProofRejected_andDisputeStaysOpen(
    mode: int, disputed: tuple[int, bytes], spotcheck: Any, node: Any, deployer: Any
) -> None:
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    spotcheck.mock_verifier.setMode(mode, sender=deployer)
    with ape.reverts(dm.ProofRejected, disputeId=dispute_id):
        dm.defend(dispute_id, b"tampered", GOOD_INSTANCES, JOB_OUTPUT, sender=node, gas=3_000_000)
    assert dm.getDispute(dispute_id).status == DisputeStatus.OPEN


def test_defend_byOtherThanNode_reverts(
    disputed: tuple[int, bytes], spotcheck: Any, challenger: Any
) -> None:
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    with ape.reverts(dm.NotDisputedNode, disputeId=dispute_id, caller=challenger):
        dm.defend(dispute_id, b"p", GOOD_INSTANCES, JOB_OUTPUT, sender=challenger)


def test_defend_afterDeadline_reverts(
    disputed: tuple[int, bytes], spotcheck: Any, node: Any, chain: Any
) -> None:
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    deadline = dm.getDispute(dispute_id).proofDeadline
    advance(chain, MOCK_MODEL.proof_window + 1)
    with ape.reverts(dm.ProofDeadlinePassed, disputeId=dispute_id, deadline=deadline):
        dm.defend(dispute_id, b"p", GOOD_INSTANCES, JOB_OUTPUT, sender=node)


def test_defendTwice_andSettleAfterDefence_revert(
    disputed: tuple[int, bytes], spotcheck: Any, node: Any, outsider: Any, chain: Any
) -> None:
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    dm.defend(dispute_id, b"p", GOOD_INSTANCES, JOB_OUTPUT, sender=node)
    with ape.reverts(dm.DisputeNotOpen, disputeId=dispute_id, status=DisputeStatus.DEFENDED):
        dm.defend(dispute_id, b"p", GOOD_INSTANCES, JOB_OUTPUT, sender=node)
    advance(chain, MOCK_MODEL.proof_window + 1)
    with ape.reverts(dm.DisputeNotOpen, disputeId=dispute_id, status=DisputeStatus.DEFENDED):
        dm.settle(dispute_id, sender=outsider)


def test_settle_noDefence_slashesPaysBountyBurnsRest_andInvalidatesJob(
    disputed: tuple[int, bytes],
    spotcheck: Any,
    node: Any,
    challenger: Any,
    requester: Any,
    outsider: Any,
    chain: Any,
) -> None:
    job_id, dispute_id = disputed
    dm, jm, sm, token = (
        spotcheck.dispute_manager,
        spotcheck.job_manager,
        spotcheck.stake_manager,
        spotcheck.token,
    )
    burned_before = token.balanceOf(BURN)
    advance(chain, MOCK_MODEL.proof_window + 1)
    receipt = dm.settle(dispute_id, sender=outsider)
    [event] = receipt.events.filter(dm.DisputeSettled)
    assert (event.slashed, event.bounty, event.burned) == (SLASH, BOUNTY, SLASH - BOUNTY)
    assert token.balanceOf(BURN) == burned_before + SLASH - BOUNTY
    assert dm.credits(challenger) == BOND + BOUNTY
    assert sm.stakeOf(node).amount == NODE_STAKE - SLASH
    assert sm.stakeOf(node).locked == 0 and sm.stakeOf(node).openDisputes == 0
    assert jm.getJob(job_id).status == JobStatus.INVALID and not jm.isJobFinal(job_id)
    assert jm.credits(requester) == JOB_FEE  # the requester gets its fee back
    with ape.reverts(dm.DisputeNotOpen, disputeId=dispute_id, status=DisputeStatus.SLASHED):
        dm.settle(dispute_id, sender=outsider)
    with ape.reverts(jm.BadJobStatus, jobId=job_id, status=JobStatus.INVALID):
        jm.finalize(job_id, sender=outsider)
    before = token.balanceOf(challenger)
    dm.withdrawCredits(sender=challenger)
    assert token.balanceOf(challenger) == before + BOND + BOUNTY
    with ape.reverts(dm.NothingToWithdraw, owner=challenger):
        dm.withdrawCredits(sender=challenger)


def test_settle_beforeDeadline_reverts(
    disputed: tuple[int, bytes], spotcheck: Any, outsider: Any
) -> None:
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    deadline = dm.getDispute(dispute_id).proofDeadline
    with ape.reverts(dm.ProofDeadlineNotPassed, disputeId=dispute_id, deadline=deadline):
        dm.settle(dispute_id, sender=outsider)


def test_unknownDispute_reverts(spotcheck: Any, node: Any, outsider: Any) -> None:
    dm = spotcheck.dispute_manager
    with ape.reverts(dm.UnknownDispute, disputeId=b"\x07" * 32):
        dm.settle(b"\x07" * 32, sender=outsider)
    with ape.reverts(dm.UnknownDispute, disputeId=b"\x07" * 32):
        dm.defend(b"\x07" * 32, b"", [], [], sender=node)


def test_openDispute_twice_reverts(
    disputed: tuple[int, bytes], spotcheck: Any, outsider: Any
) -> None:
    job_id, dispute_id = disputed
    with ape.reverts(spotcheck.dispute_manager.DisputeExists, disputeId=dispute_id):
        spotcheck.dispute_manager.openDispute(job_id, sender=outsider)


def test_openDispute_afterWindow_reverts(
    make_job: Any, spotcheck: Any, challenger: Any, chain: Any
) -> None:
    job_id = make_job()
    deadline = spotcheck.job_manager.getJob(job_id).challengeDeadline
    advance(chain, MOCK_MODEL.challenge_window + 1)
    with ape.reverts(spotcheck.dispute_manager.ChallengeWindowClosed, deadline=deadline):
        spotcheck.dispute_manager.openDispute(job_id, sender=challenger)


def test_openDispute_uncommittedOrFinalJob_reverts(
    make_job: Any, spotcheck: Any, challenger: Any, chain: Any, outsider: Any
) -> None:
    dm = spotcheck.dispute_manager
    job_id = make_job(commit=False)
    with ape.reverts(dm.NotDisputable, disputeId=onchain_job_key(job_id)):
        dm.openDispute(job_id, sender=challenger)
    final_id = make_job()
    advance(chain, MOCK_MODEL.challenge_window + 1)
    spotcheck.job_manager.finalize(final_id, sender=outsider)
    with ape.reverts(dm.NotDisputable, disputeId=onchain_job_key(final_id)):
        dm.openDispute(final_id, sender=challenger)


def test_openDispute_byItsOwnNode_reverts(make_job: Any, spotcheck: Any, node: Any) -> None:
    job_id = make_job()
    with ape.reverts(spotcheck.dispute_manager.SelfDispute, node=node):
        spotcheck.dispute_manager.openDispute(job_id, sender=node)


def test_openDispute_withoutAllowance_reverts(make_job: Any, spotcheck: Any, outsider: Any) -> None:
    job_id = make_job()
    with ape.reverts(spotcheck.token.ERC20InsufficientAllowance):
        spotcheck.dispute_manager.openDispute(job_id, sender=outsider)


def test_stakeHooks_onlyDisputeManager(spotcheck: Any, node: Any, outsider: Any) -> None:
    sm = spotcheck.stake_manager
    with ape.reverts(sm.NotAuthorized, caller=outsider):
        sm.slash(node, 1, outsider, sender=outsider)
    with ape.reverts(sm.NotAuthorized, caller=outsider):
        sm.disputeOpened(node, sender=outsider)
    with ape.reverts(sm.NotAuthorized, caller=outsider):
        sm.disputeClosed(node, sender=outsider)
    with ape.reverts(sm.NotAuthorized, caller=outsider):
        sm.lock(node, 1, sender=outsider)
    with ape.reverts(sm.NotAuthorized, caller=outsider):
        sm.unlock(node, 1, sender=outsider)


# ---------------------------------------------------------------- unbonding vs disputes


def test_withdrawStake_whileDisputeOpen_reverts_thenSucceedsAfterSettle(
    disputed: tuple[int, bytes], spotcheck: Any, node: Any, outsider: Any, chain: Any
) -> None:
    _, dispute_id = disputed
    sm, dm, token = spotcheck.stake_manager, spotcheck.dispute_manager, spotcheck.token
    sm.requestUnbond(sender=node)
    advance(chain, TEST_PARAMS.unbonding_delay + 1)
    with ape.reverts(sm.DisputesOpen, node=node, openDisputes=1):
        sm.withdrawStake(sender=node)
    dm.settle(dispute_id, sender=outsider)  # the proof window is long over
    before = token.balanceOf(node)
    sm.withdrawStake(sender=node)
    assert token.balanceOf(node) == before + NODE_STAKE - SLASH
    assert sm.stakeOf(node).amount == 0


# ---------------------------------------------------------------- batch leaves


@pytest.fixture
def batch(
    spotcheck: Any, node: Any
) -> tuple[int, list[tuple[int, list[int], list[int]]], MerkleTree]:
    """A committed batch of 5 leaves (jobIds 100..104); returns (batchId, jobs, tree)."""
    jobs = [(100 + i, [i, -i, 2 * i, 3], [10 * i, -i]) for i in range(5)]
    leaves = [
        leaf_hash(job_id, spotcheck.model_id, hash_vector(inp), hash_vector(out))
        for job_id, inp, out in jobs
    ]
    tree = MerkleTree(leaves)
    receipt = spotcheck.job_manager.commitBatch(
        spotcheck.model_id, tree.root, len(jobs), "http://n/b", sender=node
    )
    return int(receipt.return_value), jobs, tree


def _open_leaf(spotcheck: Any, batch: Any, index: int, challenger: Any) -> bytes:
    batch_id, jobs, tree = batch
    job_id, inp, out = jobs[index]
    receipt = spotcheck.dispute_manager.openBatchDispute(
        batch_id, job_id, hash_vector(inp), hash_vector(out), tree.proof(index), sender=challenger
    )
    return bytes(receipt.return_value)


def test_batchLeafDispute_defended_leafProven_batchFinalizesAfter(
    batch: Any, spotcheck: Any, node: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    batch_id, jobs, _ = batch
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    advance(chain, MOCK_MODEL.challenge_window // 2)  # dispute late: its proof window outlasts
    dispute_id = _open_leaf(spotcheck, batch, 3, challenger)
    job_id, inp, out = jobs[3]
    assert dispute_id == batch_job_key(batch_id, job_id)
    d = dm.getDispute(dispute_id)
    assert d.kind == JobKind.BATCH and d.ref == batch_id and d.jobId == job_id
    assert jm.getBatch(batch_id).openDisputes == 1
    advance(chain, MOCK_MODEL.challenge_window // 2 + 1)
    with ape.reverts(jm.DisputePending, ref=batch_id):
        jm.finalizeBatch(batch_id, sender=outsider)
    dm.defend(dispute_id, b"p", defence_instances(inp, out), out, sender=node)
    assert jm.isBatchJobFinal(batch_id, job_id)  # proven before the batch is final
    assert not jm.isBatchJobFinal(batch_id, jobs[0][0])
    jm.finalizeBatch(batch_id, sender=outsider)
    assert jm.isBatchJobFinal(batch_id, jobs[0][0])


def test_batchLeafDispute_settled_leafInvalidForever(
    batch: Any, spotcheck: Any, node: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    batch_id, jobs, _ = batch
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    dispute_id = _open_leaf(spotcheck, batch, 1, challenger)
    advance(chain, MOCK_MODEL.challenge_window + MOCK_MODEL.proof_window + 1)
    dm.settle(dispute_id, sender=outsider)
    assert spotcheck.stake_manager.stakeOf(node).amount == NODE_STAKE - SLASH
    jm.finalizeBatch(batch_id, sender=outsider)
    assert not jm.isBatchJobFinal(batch_id, jobs[1][0])
    assert jm.isBatchJobFinal(batch_id, jobs[2][0])
    assert spotcheck.stake_manager.stakeOf(node).locked == 0


def test_batchDispute_badMerkleProof_reverts(batch: Any, spotcheck: Any, challenger: Any) -> None:
    batch_id, jobs, tree = batch
    job_id, inp, _ = jobs[2]
    with ape.reverts(spotcheck.dispute_manager.InvalidMerkleProof, batchId=batch_id, jobId=job_id):
        spotcheck.dispute_manager.openBatchDispute(
            batch_id,
            job_id,
            hash_vector(inp),
            hash_vector([0, 0]),
            tree.proof(2),
            sender=challenger,
        )


def test_batchDispute_twiceOrAfterWindowOrUnknownBatch_reverts(
    batch: Any, spotcheck: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    batch_id = batch[0]
    dm = spotcheck.dispute_manager
    dispute_id = _open_leaf(spotcheck, batch, 0, challenger)
    with ape.reverts(dm.DisputeExists, disputeId=dispute_id):
        _open_leaf(spotcheck, batch, 0, outsider)
    deadline = spotcheck.job_manager.getBatch(batch_id).challengeDeadline
    advance(chain, MOCK_MODEL.challenge_window + 1)
    with ape.reverts(dm.ChallengeWindowClosed, deadline=deadline):
        _open_leaf(spotcheck, batch, 1, challenger)
    with ape.reverts(spotcheck.job_manager.UnknownBatch, batchId=77):
        dm.openBatchDispute(77, 1, b"\x00" * 32, b"\x00" * 32, [], sender=challenger)


def test_slash_largerThanStake_isClamped_neverReverts(
    spotcheck: Any,
    register_model: Any,
    mock_verifier: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """A batch locks one slash; three bad leaves slash 1500, then the 500 left, then nothing."""
    from dataclasses import replace

    sm, dm, jm = spotcheck.stake_manager, spotcheck.dispute_manager, spotcheck.job_manager
    big = replace(MOCK_MODEL, slash_amount=1500 * TOKEN)
    model_id = register_model(mock_verifier, big, tag=b"big-slash")
    jobs = [(i, [i, 0, 0, 0], [i, i]) for i in range(3)]
    leaves = [leaf_hash(j, model_id, hash_vector(a), hash_vector(b)) for j, a, b in jobs]
    tree = MerkleTree(leaves)
    batch_id = jm.commitBatch(model_id, tree.root, 3, "", sender=node).return_value
    ids = [
        bytes(
            dm.openBatchDispute(
                batch_id, j, hash_vector(a), hash_vector(b), tree.proof(i), sender=challenger
            ).return_value
        )
        for i, (j, a, b) in enumerate(jobs)
    ]
    advance(chain, big.challenge_window + big.proof_window + 1)
    slashed = []
    for dispute_id in ids:
        receipt = dm.settle(dispute_id, sender=outsider)
        [event] = receipt.events.filter(dm.DisputeSettled)
        slashed.append(event.slashed)
    assert slashed == [1500 * TOKEN, 500 * TOKEN, 0]
    assert sm.stakeOf(node).amount == 0
    bounty = (1500 + 500) * TOKEN * big.bounty_bps // 10_000
    assert dm.credits(challenger) == 3 * big.challenger_bond + bounty
    jm.finalizeBatch(batch_id, sender=outsider)  # the lock is released though stake is gone
    assert sm.stakeOf(node).locked == 0


# ---------------------------------------------------------------- attackers


def test_openDispute_sybilOfNode_frontRunsHonestChallenger_recoversOnlyBountyShare(
    make_job: Any,
    spotcheck: Any,
    node: Any,
    node2: Any,
    challenger: Any,
    requester: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """Known limitation (docs/security.md): a caught node disputes itself from another address
    (here ``node2`` plays the sybil) before the honest challenger, does not defend, and gets its
    bond plus the bounty share back. What deters it is what it cannot recover: S (1 - b)."""
    dm, sm, jm, token = (
        spotcheck.dispute_manager,
        spotcheck.stake_manager,
        spotcheck.job_manager,
        spotcheck.token,
    )
    job_id = make_job()
    dispute_id = bytes(dm.openDispute(job_id, sender=node2).return_value)  # the front-run
    before = token.balanceOf(challenger)
    with ape.reverts(dm.DisputeExists, disputeId=dispute_id):
        dm.openDispute(job_id, sender=challenger)  # the honest one comes second
    assert token.balanceOf(challenger) == before  # it loses nothing, earns nothing
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(dispute_id, sender=outsider)
    assert dm.credits(node2) == BOND + BOUNTY
    operator_loss = (NODE_STAKE - sm.stakeOf(node).amount) - (dm.credits(node2) - BOND)
    assert operator_loss == SLASH - BOUNTY == SLASH * (10_000 - MOCK_MODEL.bounty_bps) // 10_000
    assert jm.getJob(job_id).status == JobStatus.INVALID  # the job is still invalid for dApps
    assert jm.credits(requester) == JOB_FEE  # and the fee goes back to the requester


def test_openBatchDispute_byBatchNode_reverts(batch: Any, spotcheck: Any, node: Any) -> None:
    with ape.reverts(spotcheck.dispute_manager.SelfDispute, node=node):
        _open_leaf(spotcheck, batch, 0, node)


def test_openBatchDispute_hugeProofArray_reverts_andTakesNoBond(
    batch: Any, spotcheck: Any, challenger: Any
) -> None:
    """Griefing with a 2,000-sibling proof: rejected (bad proof), nothing locked or moved."""
    batch_id, jobs, _ = batch
    job_id, inp, out = jobs[0]
    dm = spotcheck.dispute_manager
    before = spotcheck.token.balanceOf(challenger)
    with ape.reverts(dm.InvalidMerkleProof, batchId=batch_id, jobId=job_id):
        dm.openBatchDispute(
            batch_id,
            job_id,
            hash_vector(inp),
            hash_vector(out),
            [bytes([i % 256]) * 32 for i in range(2000)],
            sender=challenger,
        )
    assert spotcheck.token.balanceOf(challenger) == before
    assert dm.bondAtRisk(challenger) == 0


def test_openBatchDispute_leafOfAnotherModelOrInput_reverts(
    batch: Any, spotcheck: Any, challenger: Any
) -> None:
    """A challenger cannot re-label a leaf: the leaf hash binds jobId, model, input and output."""
    batch_id, jobs, tree = batch
    job_id, inp, out = jobs[1]
    dm = spotcheck.dispute_manager
    with ape.reverts(dm.InvalidMerkleProof, batchId=batch_id, jobId=job_id):
        dm.openBatchDispute(
            batch_id,
            job_id,
            hash_vector([9, 9, 9, 9]),
            hash_vector(out),
            tree.proof(1),
            sender=challenger,
        )
    with ape.reverts(dm.InvalidMerkleProof, batchId=batch_id, jobId=job_id + 1):
        dm.openBatchDispute(
            batch_id,
            job_id + 1,
            hash_vector(inp),
            hash_vector(out),
            tree.proof(1),
            sender=challenger,
        )


def test_defend_hugeProof_byNonNode_reverts_beforeVerifying(
    disputed: tuple[int, bytes], spotcheck: Any, outsider: Any
) -> None:
    """An outsider cannot close a dispute (in either direction) by submitting a defence."""
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    with ape.reverts(dm.NotDisputedNode, disputeId=dispute_id, caller=outsider):
        dm.defend(dispute_id, b"\x00" * 20_000, GOOD_INSTANCES, JOB_OUTPUT, sender=outsider)
    assert dm.getDispute(dispute_id).status == DisputeStatus.OPEN


def test_defend_replayedDefence_onAnotherDispute_reverts(
    make_job: Any, spotcheck: Any, node: Any, challenger: Any
) -> None:
    """A valid defence of one job does not defend another job with a different input."""
    dm = spotcheck.dispute_manager
    first = make_job()
    second = make_job(input=[5, 6, 7, 8])
    d1 = bytes(dm.openDispute(first, sender=challenger).return_value)
    d2 = bytes(dm.openDispute(second, sender=challenger).return_value)
    dm.defend(d1, b"p", GOOD_INSTANCES, JOB_OUTPUT, sender=node)
    with ape.reverts(dm.InputMismatch, disputeId=d2):
        dm.defend(d2, b"p", GOOD_INSTANCES, JOB_OUTPUT, sender=node)


def test_settle_byAnyone_paysOnlyTheChallenger(
    disputed: tuple[int, bytes], spotcheck: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(dispute_id, sender=outsider)
    assert dm.credits(outsider) == 0 and dm.credits(challenger) == BOND + BOUNTY
