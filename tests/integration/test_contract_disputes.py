"""Disputes through Ape on anvil (MockVerifier): open, defend, settle, batch leaves, slashing."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from spotcheck.chain import TOKEN, DisputeStatus, JobKind, JobStatus, LeafRequestStatus
from spotcheck.encoding import BN254_R, batch_leaf_key, hash_vector, leaf_hash, onchain_job_key
from spotcheck.merkle import MerkleTree
from tests.fixtures.chain import (
    BURN,
    JOB_FEE,
    JOB_INPUT,
    JOB_OUTPUT,
    MOCK_IN_HI,
    MOCK_IN_LO,
    MOCK_MODEL,
    NODE_STAKE,
    TEST_PARAMS,
    BatchJobs,
    advance,
    batch_jobs,
    commit_test_batch,
    defence_instances,
)

pytestmark = pytest.mark.chain
SLASH = MOCK_MODEL.slash_amount
BOND = MOCK_MODEL.challenger_bond
BOUNTY = SLASH * MOCK_MODEL.bounty_bps // 10_000
#: What the circuit "computed" in these tests: within tau = 2 of JOB_OUTPUT.
PROVEN = [11, -18]
GOOD_INSTANCES = defence_instances(JOB_INPUT, PROVEN)
OUT_HASH = hash_vector(JOB_OUTPUT)


@pytest.fixture
def disputed(make_job: Any, spotcheck: Any, challenger: Any) -> tuple[int, bytes]:
    job_id = make_job()
    receipt = spotcheck.dispute_manager.openDispute(job_id, OUT_HASH, sender=challenger)
    return job_id, bytes(receipt.return_value)


def test_openDispute_locksBondAndMarksJobDisputed(
    make_job: Any, spotcheck: Any, node: Any, challenger: Any
) -> None:
    dm, token = spotcheck.dispute_manager, spotcheck.token
    job_id = make_job()
    before = token.balanceOf(challenger)
    receipt = dm.openDispute(job_id, OUT_HASH, sender=challenger)
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


def test_defend_byThirdParty_isValid_andBondGoesToTheNode(
    disputed: tuple[int, bytes], spotcheck: Any, node: Any, outsider: Any
) -> None:
    """Attack (v1): only the node could defend, so a node whose key or RPC was down (or whose
    transactions were censored) lost its stake though a valid proof existed. Now anyone may
    send the proof. The disputer's bond goes to the node unless the defender holds an open
    check claim on the job (audit A6-3, test_audit6_*): paying any defender let a disputer of
    honest jobs copy the node's pending proof from the mempool and take its own bond back
    (final audit)."""
    job_id, dispute_id = disputed
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    receipt = dm.defend(dispute_id, b"p", GOOD_INSTANCES, JOB_OUTPUT, sender=outsider)
    [ev] = receipt.events.filter(dm.DisputeDefended)
    assert (ev.node, ev.defender, ev.bondToDefender) == (node, outsider, BOND)
    assert dm.getDispute(dispute_id).status == DisputeStatus.DEFENDED
    assert jm.isJobFinal(job_id)
    assert dm.credits(node) == BOND and dm.credits(outsider) == 0


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


def test_openDispute_wrongOutputHash_reverts(
    make_job: Any, spotcheck: Any, challenger: Any
) -> None:
    """Attack (v1): after a reorg a dispute aimed at one output lands on another job's (honest)
    output. Now the dispute names the output hash it disputes."""
    dm = spotcheck.dispute_manager
    job_id = make_job()
    wrong = hash_vector([10, -21])
    with ape.reverts(dm.OutputHashMismatch, jobId=job_id, given=wrong, stored=OUT_HASH):
        dm.openDispute(job_id, wrong, sender=challenger)
    assert dm.bondAtRisk(challenger) == 0
    dm.openDispute(job_id, OUT_HASH, sender=challenger)


def test_openDispute_twice_reverts(
    disputed: tuple[int, bytes], spotcheck: Any, outsider: Any
) -> None:
    job_id, dispute_id = disputed
    with ape.reverts(spotcheck.dispute_manager.DisputeExists, disputeId=dispute_id):
        spotcheck.dispute_manager.openDispute(job_id, OUT_HASH, sender=outsider)


def test_openDispute_afterWindow_reverts(
    make_job: Any, spotcheck: Any, challenger: Any, chain: Any
) -> None:
    job_id = make_job()
    deadline = spotcheck.job_manager.getJob(job_id).challengeDeadline
    advance(chain, MOCK_MODEL.challenge_window + 1)
    with ape.reverts(spotcheck.dispute_manager.ChallengeWindowClosed, deadline=deadline):
        spotcheck.dispute_manager.openDispute(job_id, OUT_HASH, sender=challenger)


def test_openDispute_uncommittedOrFinalJob_reverts(
    make_job: Any, spotcheck: Any, challenger: Any, chain: Any, outsider: Any
) -> None:
    dm = spotcheck.dispute_manager
    job_id = make_job(commit=False)
    with ape.reverts(dm.NotDisputable, disputeId=onchain_job_key(job_id)):
        dm.openDispute(job_id, OUT_HASH, sender=challenger)
    final_id = make_job()
    advance(chain, MOCK_MODEL.challenge_window + 1)
    spotcheck.job_manager.finalize(final_id, sender=outsider)
    with ape.reverts(dm.NotDisputable, disputeId=onchain_job_key(final_id)):
        dm.openDispute(final_id, OUT_HASH, sender=challenger)


def test_openDispute_byItsOwnNode_reverts(make_job: Any, spotcheck: Any, node: Any) -> None:
    job_id = make_job()
    with ape.reverts(spotcheck.dispute_manager.SelfDispute, node=node):
        spotcheck.dispute_manager.openDispute(job_id, OUT_HASH, sender=node)


def test_openDispute_withoutAllowance_reverts(make_job: Any, spotcheck: Any, outsider: Any) -> None:
    job_id = make_job()
    with ape.reverts(spotcheck.token.ERC20InsufficientAllowance):
        spotcheck.dispute_manager.openDispute(job_id, OUT_HASH, sender=outsider)


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
def batch(spotcheck: Any, node: Any) -> tuple[int, BatchJobs, MerkleTree]:
    """A committed batch of 5 leaves (jobIds 100..104); returns (batchId, jobs, tree)."""
    jobs = batch_jobs(5)
    batch_id, tree = commit_test_batch(spotcheck, node, jobs)
    return batch_id, jobs, tree


def _open_leaf(spotcheck: Any, batch: Any, index: int, challenger: Any) -> bytes:
    batch_id, jobs, tree = batch
    job_id, inp, out = jobs[index]
    receipt = spotcheck.dispute_manager.openBatchDispute(
        batch_id,
        index,
        job_id,
        hash_vector(inp),
        hash_vector(out),
        tree.proof(index),
        sender=challenger,
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
    assert dispute_id == batch_leaf_key(batch_id, 3)
    d = dm.getDispute(dispute_id)
    assert d.kind == JobKind.BATCH and d.ref == batch_id and d.index == 3 and d.jobId == job_id
    assert jm.getBatch(batch_id).openClaims == 1
    advance(chain, MOCK_MODEL.challenge_window // 2 + 1)
    with ape.reverts(jm.ClaimsPending, batchId=batch_id, openClaims=1):
        jm.finalizeBatch(batch_id, sender=outsider)
    dm.defend(dispute_id, b"p", defence_instances(inp, out), out, sender=node)
    assert jm.isBatchLeafFinal(batch_id, 3)  # proven before the batch is final
    assert not jm.isBatchLeafFinal(batch_id, 0)
    jm.finalizeBatch(batch_id, sender=outsider)
    assert jm.isBatchLeafFinal(batch_id, 0)


def test_batchLeafDispute_settled_leafInvalidForever(
    batch: Any, spotcheck: Any, node: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    batch_id, _, _ = batch
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    dispute_id = _open_leaf(spotcheck, batch, 1, challenger)
    advance(chain, MOCK_MODEL.challenge_window + MOCK_MODEL.proof_window + 1)
    receipt = dm.settle(dispute_id, sender=outsider)
    [ev] = receipt.events.filter(jm.BatchLeafInvalidated)
    assert (ev.index, ev.slashed, ev.reserved) == (1, SLASH, 4 * SLASH)
    assert spotcheck.stake_manager.stakeOf(node).amount == NODE_STAKE - SLASH
    assert spotcheck.stake_manager.stakeOf(node).locked == 4 * SLASH
    jm.finalizeBatch(batch_id, sender=outsider)
    assert not jm.isBatchLeafFinal(batch_id, 1)
    assert jm.isBatchLeafFinal(batch_id, 2)
    assert spotcheck.stake_manager.stakeOf(node).locked == 0


def test_batchDispute_badMerkleProof_reverts(batch: Any, spotcheck: Any, challenger: Any) -> None:
    batch_id, jobs, tree = batch
    job_id, inp, _ = jobs[2]
    with ape.reverts(spotcheck.dispute_manager.InvalidMerkleProof, batchId=batch_id, index=2):
        spotcheck.dispute_manager.openBatchDispute(
            batch_id,
            2,
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
        dm.openBatchDispute(77, 0, 1, b"\x00" * 32, b"\x00" * 32, [], sender=challenger)


def test_batchLeafSlashes_eachTakeOneSlashFromTheBatchReservation(
    spotcheck: Any,
    register_model: Any,
    project: Any,
    deployer: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """A batch of 3 reserves 3 slashes; three bad leaves slash exactly one each (v1 locked one
    slash per batch and clamped the rest to whatever stake was left)."""
    from dataclasses import replace

    sm, dm, jm = spotcheck.stake_manager, spotcheck.dispute_manager, spotcheck.job_manager
    big = replace(MOCK_MODEL, slash_amount=1500 * TOKEN)
    model_id = register_model(deployer.deploy(project.MockVerifier), big, tag=b"big-slash")
    jobs = [(i, [i, 0, 0, 0], [i, i]) for i in range(3)]
    leaves = [leaf_hash(j, model_id, hash_vector(a), hash_vector(b)) for j, a, b in jobs]
    tree = MerkleTree(leaves)
    batch_id = jm.commitBatch(model_id, tree.root, 3, "", sender=node).return_value
    assert sm.stakeOf(node).locked == 4500 * TOKEN
    ids = [
        bytes(
            dm.openBatchDispute(
                batch_id, i, j, hash_vector(a), hash_vector(b), tree.proof(i), sender=challenger
            ).return_value
        )
        for i, (j, a, b) in enumerate(jobs)
    ]
    advance(chain, big.challenge_window + 3 * big.proof_window + 1)
    slashed = []
    for dispute_id in ids:
        receipt = dm.settle(dispute_id, sender=outsider)
        [event] = receipt.events.filter(dm.DisputeSettled)
        slashed.append(event.slashed)
    assert slashed == [1500 * TOKEN] * 3
    assert sm.stakeOf(node).amount == NODE_STAKE - 4500 * TOKEN
    assert sm.stakeOf(node).locked == 0 and jm.getBatch(batch_id).reserved == 0
    bounty = 4500 * TOKEN * big.bounty_bps // 10_000
    assert dm.credits(challenger) == 3 * big.challenger_bond + bounty
    receipt = jm.finalizeBatch(batch_id, sender=outsider)
    [ev] = receipt.events.filter(jm.BatchFinalized)
    assert ev.released == 0


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
    dispute_id = bytes(dm.openDispute(job_id, OUT_HASH, sender=node2).return_value)  # the front-run
    before = token.balanceOf(challenger)
    with ape.reverts(dm.DisputeExists, disputeId=dispute_id):
        dm.openDispute(job_id, OUT_HASH, sender=challenger)  # the honest one comes second
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
    with ape.reverts(dm.InvalidMerkleProof, batchId=batch_id, index=0):
        dm.openBatchDispute(
            batch_id,
            0,
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
    with ape.reverts(dm.InvalidMerkleProof, batchId=batch_id, index=1):
        dm.openBatchDispute(
            batch_id,
            1,
            job_id,
            hash_vector([9, 9, 9, 9]),
            hash_vector(out),
            tree.proof(1),
            sender=challenger,
        )
    with ape.reverts(dm.InvalidMerkleProof, batchId=batch_id, index=1):
        dm.openBatchDispute(
            batch_id,
            1,
            job_id + 1,
            hash_vector(inp),
            hash_vector(out),
            tree.proof(1),
            sender=challenger,
        )


def test_defend_byOutsider_withWrongInstances_reverts_andDisputeStaysOpen(
    disputed: tuple[int, bytes], spotcheck: Any, outsider: Any
) -> None:
    """Anyone may defend, but only with a valid defence: an outsider's garbage (another input,
    a huge proof) cannot close a dispute in either direction."""
    _, dispute_id = disputed
    dm = spotcheck.dispute_manager
    bad = defence_instances([7, 7, 7, 7], PROVEN)
    with ape.reverts(dm.InputMismatch, disputeId=dispute_id):
        dm.defend(dispute_id, b"\x00" * 20_000, bad, JOB_OUTPUT, sender=outsider)
    assert dm.getDispute(dispute_id).status == DisputeStatus.OPEN


def test_defend_replayedDefence_onAnotherDispute_reverts(
    make_job: Any, spotcheck: Any, node: Any, challenger: Any
) -> None:
    """A valid defence of one job does not defend another job with a different input."""
    dm = spotcheck.dispute_manager
    first = make_job()
    second = make_job(input=[5, 6, 7, 8])
    d1 = bytes(dm.openDispute(first, OUT_HASH, sender=challenger).return_value)
    d2 = bytes(dm.openDispute(second, OUT_HASH, sender=challenger).return_value)
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


# ---------------------------------------------------------------- v2 attacks


def _dispute(
    spotcheck: Any, batch_id: int, tree: MerkleTree, jobs: Any, index: int, sender: Any
) -> bytes:
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


def test_duplicateJobIds_twoLeaves_neverShareAVerdict(
    spotcheck: Any, node: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    """Attack (v1): a node puts two leaves with the same jobId in a batch, one honest and one
    wrong. Disputes were keyed by jobId, so proving the honest one shielded the wrong one (the
    second dispute hit DisputeExists) and isBatchJobFinal said final for both. Now verdicts are
    keyed by position."""
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    jobs = [(7, [1, 2, 3, 4], [10, 20]), (7, [5, 6, 7, 8], [99, 99]), (8, [0, 0, 0, 0], [0, 0])]
    batch_id, tree = commit_test_batch(spotcheck, node, jobs)
    honest = _dispute(spotcheck, batch_id, tree, jobs, 0, challenger)
    wrong = _dispute(spotcheck, batch_id, tree, jobs, 1, challenger)  # v1: DisputeExists
    assert honest != wrong
    assert (honest, wrong) == (batch_leaf_key(batch_id, 0), batch_leaf_key(batch_id, 1))
    dm.defend(honest, b"p", defence_instances(jobs[0][1], jobs[0][2]), jobs[0][2], sender=node)
    assert jm.isBatchLeafFinal(batch_id, 0) and not jm.isBatchLeafFinal(batch_id, 1)
    # The honest leaf's defence does not defend the other leaf with the same job id.
    with ape.reverts(dm.InputMismatch, disputeId=wrong):
        dm.defend(wrong, b"p", defence_instances(jobs[0][1], jobs[0][2]), jobs[1][2], sender=node)
    advance(chain, MOCK_MODEL.challenge_window + 2 * MOCK_MODEL.proof_window + 1)
    dm.settle(wrong, sender=outsider)
    jm.finalizeBatch(batch_id, sender=outsider)
    assert jm.isBatchLeafFinal(batch_id, 0)
    assert not jm.isBatchLeafFinal(batch_id, 1)  # invalid forever, whatever leaf 0 says
    assert jm.isBatchLeafFinal(batch_id, 2)
    key0, key1 = batch_leaf_key(batch_id, 0), batch_leaf_key(batch_id, 1)
    assert jm.batchLeafProven(key0) and not jm.batchLeafInvalid(key0)
    assert jm.batchLeafInvalid(key1) and not jm.batchLeafProven(key1)


def test_positionalProof_atAnotherIndex_reverts(
    batch: Any, spotcheck: Any, challenger: Any
) -> None:
    """A proof fixes its leaf's position: leaf 2's proof does not open a dispute on index 3
    (sorted-pair trees accepted a proof for any position)."""
    batch_id, jobs, tree = batch
    job_id, inp, out = jobs[2]
    dm = spotcheck.dispute_manager
    for index in (3, 6, 2 + 8):  # another leaf, a padding slot, an index >= count
        with ape.reverts(dm.InvalidMerkleProof, batchId=batch_id, index=index):
            dm.openBatchDispute(
                batch_id,
                index,
                job_id,
                hash_vector(inp),
                hash_vector(out),
                tree.proof(2),
                sender=challenger,
            )
    assert spotcheck.job_manager.verifyBatchLeaf(
        batch_id,
        2,
        leaf_hash(job_id, spotcheck.model_id, hash_vector(inp), hash_vector(out)),
        tree.proof(2),
    )


def test_withheldLeaf_leafRequestUnrevealed_settleSlashesFromBatchReservation(
    batch: Any,
    spotcheck: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """Attack (v1): a node commits a root and never serves the leaves; nobody can dispute what
    they cannot see, and the batch finalizes. Now a bonded leaf request forces the data
    on-chain: unrevealed, the leaf is invalid and the node is slashed."""
    batch_id, _, tree = batch
    dm, jm, sm, token = (
        spotcheck.dispute_manager,
        spotcheck.job_manager,
        spotcheck.stake_manager,
        spotcheck.token,
    )
    before = token.balanceOf(challenger)
    receipt = dm.requestLeaf(batch_id, 4, tree.root, sender=challenger)
    request_id = bytes(receipt.return_value)
    assert request_id == batch_leaf_key(batch_id, 4)
    [ev] = receipt.events.filter(dm.LeafRequested)
    assert (ev.batchId, ev.index, ev.node, ev.requester, ev.bond) == (
        batch_id,
        4,
        node,
        challenger,
        BOND,
    )
    r = dm.getLeafRequest(request_id)
    assert r.status == LeafRequestStatus.OPEN and r.revealDeadline == ev.revealDeadline
    assert token.balanceOf(challenger) == before - BOND and dm.bondAtRisk(challenger) == BOND
    assert jm.getBatch(batch_id).openClaims == 1
    with ape.reverts(dm.RevealDeadlineNotPassed, requestId=request_id, deadline=r.revealDeadline):
        dm.settleLeafRequest(request_id, sender=outsider)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    # Nothing is final with an open leaf request: neither the batch nor the leaf.
    with ape.reverts(jm.ClaimsPending, batchId=batch_id, openClaims=1):
        jm.finalizeBatch(batch_id, sender=outsider)
    assert not jm.isBatchLeafFinal(batch_id, 4)
    advance(chain, MOCK_MODEL.proof_window)
    receipt = dm.settleLeafRequest(request_id, sender=outsider)
    [settled] = receipt.events.filter(dm.LeafRequestSettled)
    assert (settled.slashed, settled.bounty, settled.burned) == (SLASH, BOUNTY, SLASH - BOUNTY)
    assert dm.getLeafRequest(request_id).status == LeafRequestStatus.SLASHED
    assert dm.credits(challenger) == BOND + BOUNTY and dm.bondAtRisk(challenger) == 0
    assert sm.stakeOf(node).amount == NODE_STAKE - SLASH
    assert jm.getBatch(batch_id).reserved == 4 * SLASH
    assert jm.batchLeafInvalid(request_id)
    with ape.reverts(dm.LeafRequestNotOpen, requestId=request_id, status=LeafRequestStatus.SLASHED):
        dm.settleLeafRequest(request_id, sender=outsider)
    jm.finalizeBatch(batch_id, sender=outsider)
    assert not jm.isBatchLeafFinal(batch_id, 4) and jm.isBatchLeafFinal(batch_id, 3)
    assert sm.stakeOf(node).locked == 0


def test_leafRequest_revealed_thenDisputableUntilItsOwnDeadline(
    batch: Any,
    spotcheck: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """The reveal publishes the leaf's data; the requester may then dispute it, even after the
    batch's challenge window, until the reveal's dispute deadline. The batch waits for it."""
    batch_id, jobs, tree = batch
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    advance(chain, MOCK_MODEL.challenge_window - 10)
    request_id = bytes(dm.requestLeaf(batch_id, 2, tree.root, sender=challenger).return_value)
    with ape.reverts(dm.LeafRequestOpen, disputeId=request_id):
        _dispute(spotcheck, batch_id, tree, jobs, 2, challenger)
    job_id, inp, out = jobs[2]
    with ape.reverts(dm.InvalidMerkleProof, batchId=batch_id, index=2):
        dm.revealLeaf(batch_id, 2, job_id, inp, [0, 0], tree.proof(2), sender=outsider)
    with ape.reverts(dm.WrongInputLength, have=3, need=4):
        dm.revealLeaf(batch_id, 2, job_id, inp[:3], out, tree.proof(2), sender=outsider)
    advance(chain, 20)  # past the batch's challenge deadline, inside the reveal window
    # Anyone may reveal (here an outsider holding the data); the bond pays the node.
    receipt = dm.revealLeaf(batch_id, 2, job_id, inp, out, tree.proof(2), sender=outsider)
    [ev] = receipt.events.filter(dm.LeafRevealed)
    assert (ev.jobId, list(ev.input), list(ev.output)) == (job_id, inp, out)
    assert (ev.inputHash, ev.outputHash) == (hash_vector(inp), hash_vector(out))
    r = dm.getLeafRequest(request_id)
    assert r.status == LeafRequestStatus.REVEALED and r.disputeDeadline == ev.disputeDeadline
    assert dm.credits(node) == BOND and dm.bondAtRisk(challenger) == 0
    b = jm.getBatch(batch_id)
    assert b.openClaims == 0 and b.finalAfter == ev.disputeDeadline > b.challengeDeadline
    with ape.reverts(
        dm.LeafRequestNotOpen, requestId=request_id, status=LeafRequestStatus.REVEALED
    ):
        dm.revealLeaf(batch_id, 2, job_id, inp, out, tree.proof(2), sender=outsider)
    # Other leaves are past their window; the revealed one is not.
    with ape.reverts(dm.ChallengeWindowClosed, deadline=b.challengeDeadline):
        _dispute(spotcheck, batch_id, tree, jobs, 1, challenger)
    with ape.reverts(jm.ChallengeWindowOpen, deadline=b.finalAfter):
        jm.finalizeBatch(batch_id, sender=outsider)
    dispute_id = _dispute(spotcheck, batch_id, tree, jobs, 2, challenger)
    # The outsider's reveal left the node's in-flight bound at the request's reveal deadline
    # (audit2 A2-1): the dispute counts from there.
    busy = int(dm.claimBusyUntil(node))
    assert busy == r.revealDeadline
    deadline = int(dm.getDispute(dispute_id).proofDeadline)
    assert deadline == busy + MOCK_MODEL.proof_window
    chain.mine(1, timestamp=deadline + 1)
    dm.settle(dispute_id, sender=outsider)
    advance(chain, MOCK_MODEL.challenge_window)
    jm.finalizeBatch(batch_id, sender=outsider)
    assert not jm.isBatchLeafFinal(batch_id, 2) and jm.isBatchLeafFinal(batch_id, 1)


def test_revealedLeaf_afterItsDisputeDeadline_notDisputable(
    batch: Any, spotcheck: Any, node: Any, challenger: Any, chain: Any
) -> None:
    batch_id, jobs, tree = batch
    dm = spotcheck.dispute_manager
    dm.requestLeaf(batch_id, 0, tree.root, sender=challenger)
    job_id, inp, out = jobs[0]
    dm.revealLeaf(batch_id, 0, job_id, inp, out, tree.proof(0), sender=node)
    deadline = dm.getLeafRequest(batch_leaf_key(batch_id, 0)).disputeDeadline
    advance(chain, MOCK_MODEL.challenge_window + 1)
    with ape.reverts(dm.ChallengeWindowClosed, deadline=deadline):
        _dispute(spotcheck, batch_id, tree, jobs, 0, challenger)


def test_leafRequest_refusedCases(
    batch: Any, spotcheck: Any, node: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    batch_id, jobs, tree = batch
    dm, jm = spotcheck.dispute_manager, spotcheck.job_manager
    with ape.reverts(dm.SelfDispute, node=node):
        dm.requestLeaf(batch_id, 0, tree.root, sender=node)
    with ape.reverts(dm.IndexOutOfRange, batchId=batch_id, index=5, count=5):
        dm.requestLeaf(batch_id, 5, tree.root, sender=challenger)
    with ape.reverts(jm.UnknownBatch, batchId=99):
        dm.requestLeaf(99, 0, tree.root, sender=challenger)
    with ape.reverts(dm.RootMismatch, batchId=batch_id, given=b"\x07" * 32, stored=tree.root):
        dm.requestLeaf(batch_id, 0, b"\x07" * 32, sender=challenger)
    request_id = bytes(dm.requestLeaf(batch_id, 0, tree.root, sender=challenger).return_value)
    with ape.reverts(dm.LeafRequestExists, requestId=request_id):
        dm.requestLeaf(batch_id, 0, tree.root, sender=outsider)
    dispute_id = _dispute(spotcheck, batch_id, tree, jobs, 1, challenger)
    with ape.reverts(dm.DisputeExists, disputeId=dispute_id):
        dm.requestLeaf(batch_id, 1, tree.root, sender=outsider)
    with ape.reverts(dm.UnknownLeafRequest, requestId=b"\x05" * 32):
        dm.settleLeafRequest(b"\x05" * 32, sender=outsider)
    deadline = jm.getBatch(batch_id).challengeDeadline
    advance(chain, MOCK_MODEL.challenge_window + 1)
    with ape.reverts(dm.ChallengeWindowClosed, deadline=deadline):
        dm.requestLeaf(batch_id, 2, tree.root, sender=challenger)
    reveal_deadline = dm.getLeafRequest(request_id).revealDeadline
    advance(chain, MOCK_MODEL.proof_window)
    job_id, inp, out = jobs[0]
    with ape.reverts(dm.RevealDeadlinePassed, requestId=request_id, deadline=reveal_deadline):
        dm.revealLeaf(batch_id, 0, job_id, inp, out, tree.proof(0), sender=node)


def test_sybilGarbageLeaves_slashOnlyTheirBatchReservation_onchainJobStaysBacked(
    spotcheck: Any,
    register_model: Any,
    make_job: Any,
    deployer: Any,
    node: Any,
    node2: Any,
    challenger: Any,
    requester: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """Attack (v1): a node with stake S holds an on-chain job, commits a batch of many garbage
    leaves (one slash locked for the whole batch) and lets its second address dispute them all:
    the slashes drain the whole stake, the second address recovers the bounties, and the honest
    challenger of the on-chain job finds nothing left to slash. Now a batch reserves a slash per
    leaf, so the garbage batch must be backed in full, and its slashes never touch the job's."""
    sm, jm, dm, token = (
        spotcheck.stake_manager,
        spotcheck.job_manager,
        spotcheck.dispute_manager,
        spotcheck.token,
    )
    cheat = outsider
    stake = TEST_PARAMS.min_stake  # 10 slashes' worth
    token.mint(cheat, stake, sender=deployer)
    token.approve(sm, 2**256 - 1, sender=cheat)
    sm.stake(stake, sender=cheat)
    job_id = make_job(node=cheat, output=[500, 500])  # a wrong answer on an on-chain job
    garbage = [(i, [i, i, i, i], [i, -i]) for i in range(10)]
    leaves = [
        leaf_hash(j, spotcheck.model_id, hash_vector(a), hash_vector(b)) for j, a, b in garbage
    ]
    with ape.reverts(sm.InsufficientStake, node=cheat, have=stake - SLASH, need=10 * SLASH):
        jm.commitBatch(spotcheck.model_id, MerkleTree(leaves).root, 10, "", sender=cheat)
    jobs = garbage[:9]
    batch_id, tree = commit_test_batch(spotcheck, cheat, jobs)
    assert sm.stakeOf(cheat).locked == stake
    ids = [_dispute(spotcheck, batch_id, tree, jobs, i, node2) for i in range(9)]  # the sybil
    honest = bytes(dm.openDispute(job_id, hash_vector([500, 500]), sender=challenger).return_value)
    advance(chain, MOCK_MODEL.challenge_window + 10 * MOCK_MODEL.proof_window + 1)
    for dispute_id in ids:
        dm.settle(dispute_id, sender=node2)
    assert sm.stakeOf(cheat).locked == SLASH  # the on-chain job's backing survived
    receipt = dm.settle(honest, sender=challenger)
    [ev] = receipt.events.filter(dm.DisputeSettled)
    assert ev.slashed == SLASH and ev.bounty == BOUNTY
    assert dm.credits(challenger) == BOND + BOUNTY
    assert sm.stakeOf(cheat).amount == 0 and sm.stakeOf(cheat).locked == 0
    assert jm.credits(requester) == JOB_FEE


def test_tenDisputesAtOnce_getTenSequentialProofWindows(
    spotcheck: Any, make_job: Any, node: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    """Attack (v1): k disputes opened together all ended one proof window later; a node that
    proves one at a time could answer only a few and lost the rest. Now each dispute's
    deadline is queued after the node's previous one."""
    dm = spotcheck.dispute_manager
    window = MOCK_MODEL.proof_window
    job_ids = [make_job() for _ in range(10)]
    # All ten in one block: anvil's automine off, raw transactions with consecutive nonces.
    w3 = chain.provider.web3
    nonce = w3.eth.get_transaction_count(challenger.address)
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        for k, job_id in enumerate(job_ids):
            data = dm.openDispute.encode_input(job_id, OUT_HASH)
            tx = {"from": challenger.address, "to": dm.address, "data": data}
            w3.eth.send_transaction({**tx, "nonce": nonce + k, "gas": 600_000})
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    assert len(chain.blocks.head.transactions) == 10
    disputes = [dm.getDispute(onchain_job_key(j)) for j in job_ids]
    assert all(d.status == DisputeStatus.OPEN for d in disputes)
    deadlines = [d.proofDeadline for d in disputes]
    opened_at = deadlines[0] - window
    assert deadlines == [opened_at + (k + 1) * window for k in range(10)]
    assert dm.openClaimsOf(node) == 10
    # Proving one per window: the last is still defensible after nine windows have passed.
    advance(chain, 9 * window - 5)
    dm.defend(onchain_job_key(job_ids[-1]), b"p", GOOD_INSTANCES, JOB_OUTPUT, sender=node)
    assert dm.openClaimsOf(node) == 9
    # An earlier one whose window passed is settled as usual; a claim counts until resolved.
    dm.settle(onchain_job_key(job_ids[0]), sender=outsider)
    late = make_job()
    d = dm.getDispute(dm.openDispute(late, OUT_HASH, sender=challenger).return_value)
    assert d.proofDeadline == chain.blocks.head.timestamp + 9 * window  # 8 open ahead of it
    # Once the queue is resolved, a new dispute gets one window from now again.
    advance(chain, window)
    for job_id in job_ids[1:9]:
        dm.settle(onchain_job_key(job_id), sender=outsider)
    dm.defend(onchain_job_key(late), b"p", GOOD_INSTANCES, JOB_OUTPUT, sender=node)
    assert dm.openClaimsOf(node) == 0
    last = make_job()
    d = dm.getDispute(dm.openDispute(last, OUT_HASH, sender=challenger).return_value)
    assert d.proofDeadline == chain.blocks.head.timestamp + window


def test_disputesAndLeafRequests_shareOneQueueOfOpenClaims(
    batch: Any, spotcheck: Any, node: Any, challenger: Any, outsider: Any, chain: Any
) -> None:
    """One per-node queue over open work: each new dispute or leaf request gets one proof window
    per claim still open against the node plus its own; a reveal, defence or settlement takes
    its claim out of the queue at once."""
    batch_id, jobs, tree = batch
    dm = spotcheck.dispute_manager
    window = MOCK_MODEL.proof_window

    def now() -> int:
        return int(chain.blocks.head.timestamp)

    r0 = bytes(dm.requestLeaf(batch_id, 0, tree.root, sender=challenger).return_value)
    assert dm.getLeafRequest(r0).revealDeadline == now() + window
    d1 = _dispute(spotcheck, batch_id, tree, jobs, 1, challenger)
    assert dm.getDispute(d1).proofDeadline == now() + 2 * window
    r2 = bytes(dm.requestLeaf(batch_id, 2, tree.root, sender=challenger).return_value)
    assert dm.getLeafRequest(r2).revealDeadline == now() + 3 * window
    assert dm.openClaimsOf(node) == 3
    job_id, inp, out = jobs[0]
    dm.revealLeaf(batch_id, 0, job_id, inp, out, tree.proof(0), sender=node)
    _, inp1, out1 = jobs[1]
    dm.defend(d1, b"p", defence_instances(inp1, out1), out1, sender=outsider)
    assert dm.openClaimsOf(node) == 1  # only leaf 2's request is open
    # The outsider's defence leaves an in-flight bound (audit2 A2-1): the node may still be
    # proving d1 for one window; new claims count from there (the node's reveal set nothing).
    busy = int(dm.claimBusyUntil(node))
    assert busy == now() + window
    r3 = bytes(dm.requestLeaf(batch_id, 3, tree.root, sender=challenger).return_value)
    assert dm.getLeafRequest(r3).revealDeadline == busy + 2 * window
    # The revealed leaf, disputed, joins the queue like any claim.
    d0 = _dispute(spotcheck, batch_id, tree, jobs, 0, challenger)
    assert dm.getDispute(d0).proofDeadline == busy + 3 * window
    assert dm.openClaimsOf(node) == 3
    chain.mine(1, timestamp=int(dm.getDispute(d0).proofDeadline) + 1)
    dm.settleLeafRequest(r2, sender=outsider)
    dm.settleLeafRequest(r3, sender=outsider)
    dm.settle(d0, sender=outsider)
    assert dm.openClaimsOf(node) == 0
    assert spotcheck.job_manager.getBatch(batch_id).openClaims == 0


def test_consumerBatchCheck_acceptsOnlyItsOwnLeafFinalAtItsIndex(
    batch: Any, spotcheck: Any, node: Any, node2: Any, outsider: Any, chain: Any
) -> None:
    """A dApp's contract checks a receipt's leaf: the node it asked, its model and input, the
    output it holds, at that index under the root, final."""
    batch_id, jobs, tree = batch
    consumer, jm = spotcheck.example_consumer, spotcheck.job_manager
    job_id, inp, out = jobs[1]
    model = spotcheck.model_id
    args = (batch_id, 1, job_id, model, node, inp, out, tree.proof(1))
    assert not consumer.isVerifiedBatchOutput(*args)  # not final yet
    advance(chain, MOCK_MODEL.challenge_window + 1)
    jm.finalizeBatch(batch_id, sender=outsider)
    assert consumer.isVerifiedBatchOutput(*args)
    assert not consumer.isVerifiedBatchOutput(
        batch_id, 1, job_id, model, node, inp, [0, 0], tree.proof(1)
    )
    assert not consumer.isVerifiedBatchOutput(
        batch_id, 2, job_id, model, node, inp, out, tree.proof(1)
    )
    other_in = [9, 9, 9, 9]
    assert not consumer.isVerifiedBatchOutput(
        batch_id, 1, job_id, model, node, other_in, out, tree.proof(1)
    )
    assert not consumer.isVerifiedBatchOutput(
        batch_id, 1, job_id, b"\x01" * 32, node, inp, out, tree.proof(1)
    )
    # The dApp asked node2: the same leaf in node's batch is not node2's answer.
    assert not consumer.isVerifiedBatchOutput(
        batch_id, 1, job_id, model, node2, inp, out, tree.proof(1)
    )


def test_consumerBatchCheck_refusesFinalLeafWithOutOfDomainInput(
    spotcheck: Any, node: Any, outsider: Any, chain: Any
) -> None:
    """Challengers never dispute a leaf whose input is outside the model's domain (the circuit
    does not cover it), so such a leaf becomes final unchecked: a cheating node that accepted
    the question could serve any output. The consumer refuses it though the leaf is final."""
    jm, consumer, model = spotcheck.job_manager, spotcheck.example_consumer, spotcheck.model_id
    outside = [MOCK_IN_HI + 1, 0, 0, 0]
    inside = [MOCK_IN_HI, MOCK_IN_LO, 0, 0]  # the bounds themselves are in the domain
    jobs = [(1, outside, [123, 456]), (2, inside, [1, 2])]
    batch_id, tree = commit_test_batch(spotcheck, node, jobs)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    jm.finalizeBatch(batch_id, sender=outsider)
    for index, (job_id, inp, out) in enumerate(jobs):
        leaf = leaf_hash(job_id, model, hash_vector(inp), hash_vector(out))
        assert jm.verifyBatchLeaf(batch_id, index, leaf, tree.proof(index))
        assert jm.isBatchLeafFinal(batch_id, index)
    assert not consumer.isVerifiedBatchOutput(
        batch_id, 0, 1, model, node, outside, [123, 456], tree.proof(0)
    )
    assert consumer.isVerifiedBatchOutput(
        batch_id, 1, 2, model, node, inside, [1, 2], tree.proof(1)
    )
