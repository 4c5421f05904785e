"""On-chain jobs and batches through Ape on anvil: request, commit, finalize, cancel, callbacks."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from spotcheck.chain import BatchStatus, JobStatus
from spotcheck.encoding import BN254_R, hash_vector
from tests.fixtures.chain import (
    JOB_FEE,
    JOB_INPUT,
    JOB_OUTPUT,
    MOCK_IN_HI,
    MOCK_IN_LO,
    MOCK_MODEL,
    NODE_STAKE,
    TEST_PARAMS,
    advance,
)

pytestmark = pytest.mark.chain
SLASH = MOCK_MODEL.slash_amount
IN_HASH = hash_vector(JOB_INPUT)


def test_requestCommitFinalize_creditsFeeToNode_andUnlocksStake(
    spotcheck: Any, node: Any, requester: Any, chain: Any
) -> None:
    jm, sm, token = spotcheck.job_manager, spotcheck.stake_manager, spotcheck.token
    before = token.balanceOf(requester)
    job_id = jm.requestJob(
        spotcheck.model_id, JOB_INPUT, node, JOB_FEE, sender=requester
    ).return_value
    assert token.balanceOf(requester) == before - JOB_FEE
    job = jm.getJob(job_id)
    assert job.status == JobStatus.REQUESTED
    assert job.inputHash == hash_vector(JOB_INPUT)

    receipt = jm.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)
    assert sm.stakeOf(node).locked == SLASH
    [event] = receipt.events.filter(jm.ResultCommitted)
    assert list(event.output) == JOB_OUTPUT
    assert jm.getJob(job_id).outputHash == hash_vector(JOB_OUTPUT)
    assert not jm.isJobFinal(job_id)

    advance(chain, MOCK_MODEL.challenge_window + 1)
    jm.finalize(job_id, sender=requester)
    assert jm.getJob(job_id).status == JobStatus.FINAL
    assert jm.isJobFinal(job_id)
    assert jm.credits(node) == JOB_FEE
    assert sm.stakeOf(node).locked == 0

    node_before = token.balanceOf(node)
    jm.withdrawCredits(sender=node)
    assert token.balanceOf(node) == node_before + JOB_FEE
    assert jm.credits(node) == 0


def test_finalize_duringChallengeWindow_reverts(
    make_job: Any, spotcheck: Any, outsider: Any
) -> None:
    job_id = make_job()
    deadline = spotcheck.job_manager.getJob(job_id).challengeDeadline
    with ape.reverts(spotcheck.job_manager.ChallengeWindowOpen, deadline=deadline):
        spotcheck.job_manager.finalize(job_id, sender=outsider)


def test_finalize_twice_reverts(make_job: Any, spotcheck: Any, chain: Any, outsider: Any) -> None:
    job_id = make_job()
    advance(chain, MOCK_MODEL.challenge_window + 1)
    spotcheck.job_manager.finalize(job_id, sender=outsider)
    with ape.reverts(spotcheck.job_manager.BadJobStatus, jobId=job_id, status=JobStatus.FINAL):
        spotcheck.job_manager.finalize(job_id, sender=outsider)


def test_finalize_uncommittedJob_reverts(make_job: Any, spotcheck: Any, outsider: Any) -> None:
    job_id = make_job(commit=False)
    with ape.reverts(spotcheck.job_manager.BadJobStatus, jobId=job_id, status=JobStatus.REQUESTED):
        spotcheck.job_manager.finalize(job_id, sender=outsider)


def test_unknownJob_reverts(spotcheck: Any, outsider: Any) -> None:
    with ape.reverts(spotcheck.job_manager.UnknownJob, jobId=99):
        spotcheck.job_manager.finalize(99, sender=outsider)
    with ape.reverts(spotcheck.job_manager.UnknownJob, jobId=99):
        spotcheck.job_manager.getJob(99)


def test_requestJob_wrongInputLength_reverts(spotcheck: Any, node: Any, requester: Any) -> None:
    with ape.reverts(spotcheck.job_manager.WrongInputLength, have=3, need=4):
        spotcheck.job_manager.requestJob(spotcheck.model_id, [1, 2, 3], node, 0, sender=requester)


def test_requestJob_inputOutsideField_reverts(spotcheck: Any, node: Any, requester: Any) -> None:
    big = BN254_R // 2 + 1
    jm = spotcheck.job_manager
    with ape.reverts(jm.InputOutOfDomain, index=2, value=-big, inLo=MOCK_IN_LO, inHi=MOCK_IN_HI):
        jm.requestJob(spotcheck.model_id, [0, 0, -big, 0], node, 0, sender=requester)


@pytest.mark.parametrize(
    ("inputs", "index", "value"),
    [
        ([0, 0, 0, MOCK_IN_HI + 1], 3, MOCK_IN_HI + 1),
        ([MOCK_IN_LO - 1, 0, 0, 0], 0, MOCK_IN_LO - 1),
        ([0, MOCK_IN_HI + 5, MOCK_IN_LO - 5, 0], 1, MOCK_IN_HI + 5),  # the first one is named
    ],
)
def test_requestJob_outOfDomain_revertsWithIndexAndValue(
    spotcheck: Any, node: Any, requester: Any, inputs: list[int], index: int, value: int
) -> None:
    """Attack (v1): a requester sends an input the circuit does not cover; the honest node's
    answer cannot be proven and it is slashed. Now such a request cannot exist."""
    jm = spotcheck.job_manager
    with ape.reverts(
        jm.InputOutOfDomain, index=index, value=value, inLo=MOCK_IN_LO, inHi=MOCK_IN_HI
    ):
        jm.requestJob(spotcheck.model_id, inputs, node, JOB_FEE, sender=requester)
    # The domain's corners themselves are accepted.
    jm.requestJob(
        spotcheck.model_id, [MOCK_IN_LO, MOCK_IN_HI, 0, 0], node, JOB_FEE, sender=requester
    )


def test_requestJob_belowPrice_reverts_atOrAbovePrice_accepted(
    spotcheck: Any, node: Any, node2: Any, requester: Any
) -> None:
    """Attack (v1): zero-fee requests to a node oblige it to commit (or count a liveness
    failure). Now a request below max(minFee, the node's posted price) cannot exist."""
    jm = spotcheck.job_manager
    assert jm.priceOf(node, spotcheck.model_id) == 0  # MOCK_MODEL.minFee = 0, nothing posted
    receipt = jm.setPrice(spotcheck.model_id, JOB_FEE, sender=node)
    [ev] = receipt.events.filter(jm.PriceSet)
    assert (ev.node, ev.modelId, ev.price) == (node, spotcheck.model_id, JOB_FEE)
    assert jm.priceOf(node, spotcheck.model_id) == JOB_FEE
    for fee in (0, JOB_FEE - 1):
        with ape.reverts(jm.FeeBelowPrice, fee=fee, price=JOB_FEE):
            jm.requestJob(spotcheck.model_id, JOB_INPUT, node, fee, sender=requester)
    jm.requestJob(spotcheck.model_id, JOB_INPUT, node, JOB_FEE, sender=requester)
    jm.requestJob(spotcheck.model_id, JOB_INPUT, node2, 0, sender=requester)  # node2 posted none
    with ape.reverts(spotcheck.model_registry.UnknownModel, modelId=b"\x07" * 32):
        jm.setPrice(b"\x07" * 32, 1, sender=node)


def test_requestJob_belowModelMinFee_reverts(
    spotcheck: Any, node: Any, requester: Any, register_model: Any, project: Any, deployer: Any
) -> None:
    from dataclasses import replace

    jm = spotcheck.job_manager
    priced = register_model(
        deployer.deploy(project.MockVerifier), replace(MOCK_MODEL, min_fee=JOB_FEE), b"priced"
    )
    assert jm.priceOf(node, priced) == JOB_FEE
    jm.setPrice(priced, 1, sender=node)  # a posted price below minFee does not lower it
    assert jm.priceOf(node, priced) == JOB_FEE
    with ape.reverts(jm.FeeBelowPrice, fee=0, price=JOB_FEE):
        jm.requestJob(priced, JOB_INPUT, node, 0, sender=requester)
    jm.requestJob(priced, JOB_INPUT, node, JOB_FEE, sender=requester)


def test_commitResult_wrongInputHash_reverts(make_job: Any, spotcheck: Any, node: Any) -> None:
    """Attack (v1): after a reorg, job ids shift and a node's commit lands on another
    requester's job. Now the commit names the input hash it answers."""
    jm = spotcheck.job_manager
    job_id = make_job(commit=False)
    other = hash_vector([9, 9, 9, 9])
    with ape.reverts(jm.InputHashMismatch, jobId=job_id, given=other, stored=IN_HASH):
        jm.commitResult(job_id, other, JOB_OUTPUT, sender=node)
    jm.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)


def test_requestJob_unknownModel_reverts(spotcheck: Any, node: Any, requester: Any) -> None:
    with ape.reverts(spotcheck.model_registry.UnknownModel, modelId=b"\x01" * 32):
        spotcheck.job_manager.requestJob(b"\x01" * 32, JOB_INPUT, node, 0, sender=requester)


def test_requestJob_zeroNode_reverts(spotcheck: Any, requester: Any) -> None:
    with ape.reverts(spotcheck.job_manager.ZeroAddress):
        spotcheck.job_manager.requestJob(
            spotcheck.model_id, JOB_INPUT, ape.utils.ZERO_ADDRESS, 0, sender=requester
        )


def test_requestAndCommit_onDeactivatedModel_revert(
    make_job: Any, spotcheck: Any, node: Any, requester: Any, deployer: Any
) -> None:
    job_id = make_job(commit=False)
    spotcheck.model_registry.deactivateModel(spotcheck.model_id, sender=deployer)
    with ape.reverts(spotcheck.job_manager.ModelInactive, modelId=spotcheck.model_id):
        spotcheck.job_manager.requestJob(spotcheck.model_id, JOB_INPUT, node, 0, sender=requester)
    with ape.reverts(spotcheck.job_manager.ModelInactive, modelId=spotcheck.model_id):
        spotcheck.job_manager.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)
    with ape.reverts(spotcheck.job_manager.ModelInactive, modelId=spotcheck.model_id):
        spotcheck.job_manager.commitBatch(spotcheck.model_id, b"\x01" * 32, 1, "", sender=node)


def test_commitResult_byOtherNode_reverts(
    make_job: Any, spotcheck: Any, node: Any, node2: Any
) -> None:
    job_id = make_job(commit=False)
    with ape.reverts(spotcheck.job_manager.NotJobNode, jobId=job_id, caller=node2, node=node):
        spotcheck.job_manager.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node2)


def test_commitResult_wrongOutputLength_reverts(make_job: Any, spotcheck: Any, node: Any) -> None:
    job_id = make_job(commit=False)
    with ape.reverts(spotcheck.job_manager.WrongOutputLength, have=3, need=2):
        spotcheck.job_manager.commitResult(job_id, IN_HASH, [1, 2, 3], sender=node)


def test_commitResult_twice_reverts(make_job: Any, spotcheck: Any, node: Any) -> None:
    job_id = make_job()
    with ape.reverts(spotcheck.job_manager.BadJobStatus, jobId=job_id, status=JobStatus.COMMITTED):
        spotcheck.job_manager.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)


def test_commitResult_afterDeadline_reverts(
    make_job: Any, spotcheck: Any, node: Any, chain: Any
) -> None:
    job_id = make_job(commit=False)
    deadline = spotcheck.job_manager.getJob(job_id).commitDeadline
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    with ape.reverts(spotcheck.job_manager.CommitDeadlinePassed, jobId=job_id, deadline=deadline):
        spotcheck.job_manager.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)


def test_commitResult_withoutFreeStake_reverts(
    spotcheck: Any, make_job: Any, node: Any, stake_manager: Any
) -> None:
    # NODE_STAKE backs NODE_STAKE / SLASH open jobs or leaves; one more must fail.
    slots = NODE_STAKE // SLASH
    spotcheck.job_manager.commitBatch(spotcheck.model_id, b"\x11" * 32, slots - 1, "", sender=node)
    make_job()
    job_id = make_job(commit=False)
    with ape.reverts(stake_manager.InsufficientStake, node=node, have=0, need=SLASH):
        spotcheck.job_manager.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)


def test_commitResult_byUnstakedNode_reverts(
    spotcheck: Any, make_job: Any, outsider: Any, stake_manager: Any
) -> None:
    job_id = make_job(commit=False, node=outsider)
    with ape.reverts(
        stake_manager.InsufficientStake, node=outsider, have=0, need=TEST_PARAMS.min_stake
    ):
        spotcheck.job_manager.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=outsider)


def test_commitResult_whileUnbonding_reverts(
    spotcheck: Any, make_job: Any, node: Any, stake_manager: Any
) -> None:
    job_id = make_job(commit=False)
    stake_manager.requestUnbond(sender=node)
    with ape.reverts(stake_manager.NodeUnbonding, node=node):
        spotcheck.job_manager.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)


def test_cancelJob_afterCommitDeadline_refundsAndRecordsLivenessFailure(
    make_job: Any, spotcheck: Any, node: Any, requester: Any, chain: Any
) -> None:
    jm, token = spotcheck.job_manager, spotcheck.token
    job_id = make_job(commit=False)
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    receipt = jm.cancelJob(job_id, sender=requester)
    assert jm.getJob(job_id).status == JobStatus.CANCELLED
    assert jm.livenessFailures(node) == 1
    [failure] = receipt.events.filter(jm.LivenessFailure)
    assert failure.totalFailures == 1
    before = token.balanceOf(requester)
    jm.withdrawCredits(sender=requester)
    assert token.balanceOf(requester) == before + JOB_FEE
    with ape.reverts(jm.BadJobStatus, jobId=job_id, status=JobStatus.CANCELLED):
        jm.cancelJob(job_id, sender=requester)


def test_cancelJob_beforeDeadline_reverts(make_job: Any, spotcheck: Any, requester: Any) -> None:
    job_id = make_job(commit=False)
    deadline = spotcheck.job_manager.getJob(job_id).commitDeadline
    with ape.reverts(
        spotcheck.job_manager.CommitDeadlineNotPassed, jobId=job_id, deadline=deadline
    ):
        spotcheck.job_manager.cancelJob(job_id, sender=requester)


def test_cancelJob_byOther_reverts(
    make_job: Any, spotcheck: Any, outsider: Any, chain: Any
) -> None:
    job_id = make_job(commit=False)
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    with ape.reverts(spotcheck.job_manager.NotRequester, jobId=job_id, caller=outsider):
        spotcheck.job_manager.cancelJob(job_id, sender=outsider)


def test_cancelJob_committedJob_reverts(
    make_job: Any, spotcheck: Any, requester: Any, chain: Any
) -> None:
    job_id = make_job()
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    with ape.reverts(spotcheck.job_manager.BadJobStatus, jobId=job_id, status=JobStatus.COMMITTED):
        spotcheck.job_manager.cancelJob(job_id, sender=requester)


def test_withdrawCredits_withNothing_reverts(spotcheck: Any, outsider: Any) -> None:
    with ape.reverts(spotcheck.job_manager.NothingToWithdraw, owner=outsider):
        spotcheck.job_manager.withdrawCredits(sender=outsider)


def test_hooks_onlyDisputeManager(make_job: Any, spotcheck: Any, outsider: Any) -> None:
    job_id = make_job()
    jm = spotcheck.job_manager
    for call in (jm.onJobDisputed, jm.onJobProven, jm.onJobInvalidated):
        with ape.reverts(jm.NotDisputeManager, caller=outsider):
            call(job_id, sender=outsider)
    for call in (
        jm.onBatchLeafDisputed,
        jm.onBatchLeafRequested,
        jm.onBatchLeafProven,
        jm.onBatchLeafInvalidated,
    ):
        with ape.reverts(jm.NotDisputeManager, caller=outsider):
            call(1, 1, sender=outsider)
    with ape.reverts(jm.NotDisputeManager, caller=outsider):
        jm.onBatchLeafRevealed(1, 1, 1, sender=outsider)


def test_initialize_twiceOrByOther_reverts(spotcheck: Any, deployer: Any, outsider: Any) -> None:
    jm, sm = spotcheck.job_manager, spotcheck.stake_manager
    with ape.reverts(jm.NotDeployer, caller=outsider):
        jm.initialize(outsider, sender=outsider)
    with ape.reverts(jm.AlreadyInitialized):
        jm.initialize(outsider, sender=deployer)
    with ape.reverts(sm.NotAuthorized, caller=outsider):
        sm.initialize(outsider, outsider, sender=outsider)
    with ape.reverts(sm.AlreadyInitialized):
        sm.initialize(outsider, outsider, sender=deployer)


# ---------------------------------------------------------------- consumers


@pytest.fixture
def fund_consumer(spotcheck: Any, deployer: Any) -> Any:
    def _fund(consumer: Any, amount: int = 100 * JOB_FEE) -> None:
        spotcheck.token.mint(consumer, amount, sender=deployer)

    return _fund


def test_exampleConsumer_storesOnlyFinalMatchingOutput(
    spotcheck: Any, node: Any, deployer: Any, outsider: Any, chain: Any, fund_consumer: Any
) -> None:
    consumer, jm = spotcheck.example_consumer, spotcheck.job_manager
    fund_consumer(consumer)
    job_id = consumer.request(
        spotcheck.model_id, JOB_INPUT, node, JOB_FEE, sender=deployer
    ).return_value
    jm.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)
    with ape.reverts(consumer.OutputNotVerified, jobId=job_id):
        consumer.deliverOutput(job_id, JOB_OUTPUT, sender=outsider)  # not final yet
    advance(chain, MOCK_MODEL.challenge_window + 1)
    receipt = jm.finalize(job_id, sender=outsider)
    assert not list(receipt.events.filter(jm.ConsumerCallbackFailed))
    assert consumer.finalOutputHash(job_id) == hash_vector(JOB_OUTPUT)
    with ape.reverts(consumer.OutputNotVerified, jobId=job_id):
        consumer.deliverOutput(job_id, [11, -20], sender=outsider)  # wrong output
    consumer.deliverOutput(job_id, JOB_OUTPUT, sender=outsider)
    assert list(consumer.outputOf(job_id)) == JOB_OUTPUT
    with ape.reverts(consumer.AlreadyDelivered, jobId=job_id):
        consumer.deliverOutput(job_id, JOB_OUTPUT, sender=outsider)


def test_exampleConsumerRequest_byStranger_reverts_andBudgetIntact(
    spotcheck: Any, node: Any, outsider: Any, fund_consumer: Any
) -> None:
    """The attack the owner check stops: a stranger pays the dApp's budget to a node of their
    choice (here the staked ``node``; in the wild their own)."""
    consumer, token, jm = spotcheck.example_consumer, spotcheck.token, spotcheck.job_manager
    fund_consumer(consumer)
    budget, jobs_before = token.balanceOf(consumer), jm.jobCount()
    for fee in (JOB_FEE, budget, 0):
        with ape.reverts(consumer.OwnableUnauthorizedAccount, account=outsider):
            consumer.request(spotcheck.model_id, JOB_INPUT, node, fee, sender=outsider)
    assert token.balanceOf(consumer) == budget
    assert token.allowance(consumer, jm) == 0
    assert jm.jobCount() == jobs_before


def test_exampleConsumer_ownedByDeployer_handOverIsTwoStep(
    spotcheck: Any, node: Any, deployer: Any, requester: Any, outsider: Any, fund_consumer: Any
) -> None:
    consumer = spotcheck.example_consumer
    unauthorized = consumer.OwnableUnauthorizedAccount
    fund_consumer(consumer)
    assert consumer.owner() == deployer
    with ape.reverts(unauthorized, account=outsider):
        consumer.transferOwnership(outsider, sender=outsider)
    consumer.transferOwnership(requester, sender=deployer)
    with ape.reverts(unauthorized, account=requester):  # pending is not owner yet
        consumer.request(spotcheck.model_id, JOB_INPUT, node, JOB_FEE, sender=requester)
    with ape.reverts(unauthorized, account=outsider):
        consumer.acceptOwnership(sender=outsider)
    consumer.acceptOwnership(sender=requester)
    assert consumer.owner() == requester
    receipt = consumer.request(spotcheck.model_id, JOB_INPUT, node, JOB_FEE, sender=requester)
    [ev] = receipt.events.filter(consumer.JobRequestedBy)
    assert ev.by == requester
    with ape.reverts(unauthorized, account=deployer):  # the old owner lost the right
        consumer.request(spotcheck.model_id, JOB_INPUT, node, JOB_FEE, sender=deployer)


def test_exampleConsumerBudget_onlyOwnerWithdraws_andOwnershipCannotBeRenounced(
    spotcheck: Any, deployer: Any, outsider: Any, fund_consumer: Any
) -> None:
    consumer, token = spotcheck.example_consumer, spotcheck.token
    fund_consumer(consumer)
    budget = token.balanceOf(consumer)
    with ape.reverts(consumer.OwnableUnauthorizedAccount, account=outsider):
        consumer.withdrawBudget(outsider, budget, sender=outsider)
    with ape.reverts(consumer.RenounceDisabled):
        consumer.renounceOwnership(sender=deployer)
    assert consumer.owner() == deployer
    before = token.balanceOf(deployer)
    receipt = consumer.withdrawBudget(deployer, budget, sender=deployer)
    [ev] = receipt.events.filter(consumer.BudgetWithdrawn)
    assert (ev.to, ev.amount) == (deployer, budget)
    assert token.balanceOf(consumer) == 0
    assert token.balanceOf(deployer) == before + budget


def test_consumerBase_callback_onlyFromJobManager(spotcheck: Any, outsider: Any) -> None:
    consumer = spotcheck.example_consumer
    with ape.reverts(consumer.OnlyJobManager, caller=outsider):
        consumer.onSpotcheckJobFinalized(1, b"\x00" * 32, sender=outsider)


def test_exampleConsumer_cancelsAndRecoversRefund(
    spotcheck: Any, node: Any, deployer: Any, outsider: Any, chain: Any, fund_consumer: Any
) -> None:
    consumer, token = spotcheck.example_consumer, spotcheck.token
    fund_consumer(consumer, JOB_FEE)
    job_id = consumer.request(
        spotcheck.model_id, JOB_INPUT, node, JOB_FEE, sender=deployer
    ).return_value
    assert token.balanceOf(consumer) == 0
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    consumer.cancel(job_id, sender=outsider)
    consumer.withdrawRefunds(sender=outsider)
    assert token.balanceOf(consumer) == JOB_FEE


@pytest.mark.parametrize(
    "behaviour", [0, 1, 2, 3], ids=["revert", "burnGas", "reenter", "returnBomb"]
)
def test_finalize_withHostileConsumer_stillFinalizes(
    behaviour: int,
    project: Any,
    spotcheck: Any,
    node: Any,
    deployer: Any,
    outsider: Any,
    chain: Any,
    fund_consumer: Any,
) -> None:
    jm = spotcheck.job_manager
    hostile = deployer.deploy(project.HostileConsumer, jm)
    hostile.setBehaviour(behaviour, sender=deployer)
    fund_consumer(hostile)
    job_id = hostile.request(
        spotcheck.token, spotcheck.model_id, JOB_INPUT, node, JOB_FEE, sender=outsider
    ).return_value
    jm.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    receipt = jm.finalize(job_id, sender=outsider, gas=1_000_000)
    assert jm.isJobFinal(job_id)
    assert jm.credits(node) == JOB_FEE
    [failed] = receipt.events.filter(jm.ConsumerCallbackFailed)
    assert failed.jobId == job_id
    assert receipt.gas_used < 300_000  # a returned bomb or burned gas is capped


def test_finalize_withTooLittleGasForCallback_reverts(
    project: Any,
    spotcheck: Any,
    node: Any,
    deployer: Any,
    outsider: Any,
    chain: Any,
    fund_consumer: Any,
) -> None:
    jm = spotcheck.job_manager
    consumer = spotcheck.example_consumer
    fund_consumer(consumer)
    job_id = consumer.request(
        spotcheck.model_id, JOB_INPUT, node, JOB_FEE, sender=deployer
    ).return_value
    jm.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    # Enough for everything before the callback, too little for the guaranteed callback gas.
    with ape.reverts(jm.InsufficientCallbackGas):
        jm.finalize(job_id, sender=outsider, gas=110_000)
    assert not jm.isJobFinal(job_id)


# ---------------------------------------------------------------- batches


def test_commitBatch_lockOnce_finalizeAfterWindow_unlocks(
    spotcheck: Any, node: Any, outsider: Any, chain: Any
) -> None:
    jm, sm = spotcheck.job_manager, spotcheck.stake_manager
    receipt = jm.commitBatch(
        spotcheck.model_id, b"\x11" * 32, 64, "http://node/batches/1", sender=node
    )
    batch_id = receipt.return_value
    batch = jm.getBatch(batch_id)
    assert batch.status == BatchStatus.COMMITTED
    assert batch.count == 64 and batch.uri == "http://node/batches/1"
    assert batch.reserved == 64 * SLASH and batch.openClaims == 0
    assert batch.finalAfter == batch.challengeDeadline
    assert sm.stakeOf(node).locked == 64 * SLASH  # every leaf backed by its own slash
    with ape.reverts(jm.ChallengeWindowOpen, deadline=batch.challengeDeadline):
        jm.finalizeBatch(batch_id, sender=outsider)
    assert not jm.isBatchLeafFinal(batch_id, 7)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    receipt = jm.finalizeBatch(batch_id, sender=outsider)
    [ev] = receipt.events.filter(jm.BatchFinalized)
    assert ev.released == 64 * SLASH
    assert jm.getBatch(batch_id).status == BatchStatus.FINAL
    assert jm.isBatchLeafFinal(batch_id, 7) and jm.isBatchLeafFinal(batch_id, 63)
    assert not jm.isBatchLeafFinal(batch_id, 64)  # not a leaf: index >= count
    assert jm.getBatch(batch_id).reserved == 0
    assert sm.stakeOf(node).locked == 0
    with ape.reverts(jm.BadBatchStatus, batchId=batch_id, status=BatchStatus.FINAL):
        jm.finalizeBatch(batch_id, sender=outsider)


def test_commitBatch_emptyOrZeroRoot_reverts(spotcheck: Any, node: Any) -> None:
    jm = spotcheck.job_manager
    with ape.reverts(jm.EmptyBatch):
        jm.commitBatch(spotcheck.model_id, b"\x11" * 32, 0, "", sender=node)
    with ape.reverts(jm.ZeroRoot):
        jm.commitBatch(spotcheck.model_id, b"\x00" * 32, 1, "", sender=node)


def test_unknownBatch_reverts(spotcheck: Any, outsider: Any) -> None:
    with ape.reverts(spotcheck.job_manager.UnknownBatch, batchId=5):
        spotcheck.job_manager.finalizeBatch(5, sender=outsider)


# ---------------------------------------------------------------- attackers


def test_requestJob_hugeInputArray_revertsOnLength(
    spotcheck: Any, node: Any, requester: Any
) -> None:
    """Griefing with calldata: a 5,000-element input is refused by its length, not looped over."""
    jm = spotcheck.job_manager
    with ape.reverts(jm.WrongInputLength, have=5000, need=MOCK_MODEL.input_len):
        jm.requestJob(spotcheck.model_id, [1] * 5000, node, 0, sender=requester)


def test_requestJob_feeWithoutTokens_reverts(spotcheck: Any, node: Any, outsider: Any) -> None:
    with ape.reverts(spotcheck.token.ERC20InsufficientAllowance):
        spotcheck.job_manager.requestJob(spotcheck.model_id, JOB_INPUT, node, 1, sender=outsider)


def test_commitBatch_byUnstakedOrUnbondingNode_orUnknownModel_reverts(
    spotcheck: Any, node: Any, outsider: Any
) -> None:
    jm, sm = spotcheck.job_manager, spotcheck.stake_manager
    with ape.reverts(sm.InsufficientStake, node=outsider):
        jm.commitBatch(spotcheck.model_id, b"\x11" * 32, 1, "", sender=outsider)
    with ape.reverts(spotcheck.model_registry.UnknownModel, modelId=b"\x42" * 32):
        jm.commitBatch(b"\x42" * 32, b"\x11" * 32, 1, "", sender=node)
    sm.requestUnbond(sender=node)
    with ape.reverts(sm.NodeUnbonding, node=node):
        jm.commitBatch(spotcheck.model_id, b"\x11" * 32, 1, "", sender=node)


def test_commitBatch_moreLeavesThanStakeBacks_reverts(spotcheck: Any, node: Any) -> None:
    """Attack (v1): a batch of 2**32-1 leaves locked one slash, so a cheat in a huge batch was
    backed by almost nothing. Now every leaf reserves a slash: the stake caps open work."""
    jm, sm = spotcheck.job_manager, spotcheck.stake_manager
    free = sm.freeStake(node)
    with ape.reverts(sm.InsufficientStake, node=node, have=free, need=(2**32 - 1) * SLASH):
        jm.commitBatch(spotcheck.model_id, b"\x11" * 32, 2**32 - 1, "x" * 2048, sender=node)
    count = NODE_STAKE // SLASH
    with ape.reverts(sm.InsufficientStake, node=node, have=free, need=(count + 1) * SLASH):
        jm.commitBatch(spotcheck.model_id, b"\x11" * 32, count + 1, "", sender=node)
    jm.commitBatch(spotcheck.model_id, b"\x11" * 32, count, "", sender=node)
    assert sm.stakeOf(node).locked == sm.stakeOf(node).amount == NODE_STAKE


def test_withdrawCredits_replay_paysOnce(
    make_job: Any, spotcheck: Any, node: Any, outsider: Any, chain: Any
) -> None:
    jm, token = spotcheck.job_manager, spotcheck.token
    job_id = make_job()
    advance(chain, MOCK_MODEL.challenge_window + 1)
    jm.finalize(job_id, sender=outsider)
    before = token.balanceOf(node)
    jm.withdrawCredits(sender=node)
    with ape.reverts(jm.NothingToWithdraw, owner=node):
        jm.withdrawCredits(sender=node)
    assert token.balanceOf(node) == before + JOB_FEE


def test_cancelJob_replay_reverts_andRefundsOnce(
    make_job: Any, spotcheck: Any, requester: Any, chain: Any
) -> None:
    jm = spotcheck.job_manager
    job_id = make_job(commit=False)
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    jm.cancelJob(job_id, sender=requester)
    with ape.reverts(jm.BadJobStatus, jobId=job_id, status=JobStatus.CANCELLED):
        jm.cancelJob(job_id, sender=requester)
    assert jm.credits(requester) == JOB_FEE


def test_commitResult_afterRequesterCancelled_reverts(
    make_job: Any, spotcheck: Any, node: Any, requester: Any, chain: Any
) -> None:
    """A late node cannot commit over a cancellation and claim the refunded fee."""
    jm = spotcheck.job_manager
    job_id = make_job(commit=False)
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    jm.cancelJob(job_id, sender=requester)
    with ape.reverts(jm.BadJobStatus, jobId=job_id, status=JobStatus.CANCELLED):
        jm.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)


def test_exampleConsumer_cancelAndRefunds_byAttacker_payOnlyTheConsumer(
    spotcheck: Any, node: Any, deployer: Any, outsider: Any, chain: Any, fund_consumer: Any
) -> None:
    consumer, token, jm = spotcheck.example_consumer, spotcheck.token, spotcheck.job_manager
    fund_consumer(consumer, JOB_FEE)
    job_id = consumer.request(
        spotcheck.model_id, JOB_INPUT, node, JOB_FEE, sender=deployer
    ).return_value
    with ape.reverts(jm.CommitDeadlineNotPassed):
        consumer.cancel(job_id, sender=outsider)
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    consumer.cancel(job_id, sender=outsider)
    consumer.withdrawRefunds(sender=outsider)
    assert token.balanceOf(outsider) == 0 and token.balanceOf(consumer) == JOB_FEE
    with ape.reverts(jm.NothingToWithdraw, owner=consumer):
        consumer.withdrawRefunds(sender=outsider)  # replay


def test_exampleConsumer_deliverOutput_unknownOrUncommittedJob_reverts(
    spotcheck: Any, make_job: Any, outsider: Any
) -> None:
    consumer = spotcheck.example_consumer
    with ape.reverts(consumer.NotOwnJob, jobId=999):
        consumer.deliverOutput(999, JOB_OUTPUT, sender=outsider)
    job_id = make_job(commit=False)
    with ape.reverts(consumer.NotOwnJob, jobId=job_id):
        consumer.deliverOutput(job_id, [0, 0], sender=outsider)


def test_exampleConsumer_refusesFinalOutputOfAJobItNeverRequested(
    spotcheck: Any, make_job: Any, outsider: Any, chain: Any
) -> None:
    """Attack (v1): any final job's output could be delivered to a consumer as if it answered
    the consumer's question. Now the consumer accepts only jobs it requested itself."""
    consumer, jm = spotcheck.example_consumer, spotcheck.job_manager
    job_id = make_job()  # requested by `requester`, not by the consumer
    advance(chain, MOCK_MODEL.challenge_window + 1)
    jm.finalize(job_id, sender=outsider)
    assert jm.isJobFinal(job_id)
    with ape.reverts(consumer.NotOwnJob, jobId=job_id):
        consumer.deliverOutput(job_id, JOB_OUTPUT, sender=outsider)
    assert not consumer.delivered(job_id)


def test_cancelJob_onDeactivatedModel_countsNoLivenessFailure(
    make_job: Any, spotcheck: Any, node: Any, requester: Any, deployer: Any, chain: Any
) -> None:
    """A node cannot commit for a deactivated model; the refund is still paid, but the node is
    not blamed."""
    jm = spotcheck.job_manager
    job_id = make_job(commit=False)
    spotcheck.model_registry.deactivateModel(spotcheck.model_id, sender=deployer)
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    receipt = jm.cancelJob(job_id, sender=requester)
    assert not list(receipt.events.filter(jm.LivenessFailure))
    assert jm.livenessFailures(node) == 0
    assert jm.credits(requester) == JOB_FEE


def test_cancelJob_feeAtCurrentPrice_countsLivenessFailure_belowItCountsNone(
    make_job: Any, spotcheck: Any, node: Any, requester: Any, chain: Any
) -> None:
    """The node ignores requests below its current price; a cancel counts a liveness failure
    only if the fee still meets ``priceOf`` at cancel time. A price cut never lets a node escape
    (the fee still meets the lower price); a rise does, for older cheaper requests (a counter,
    never a slash)."""
    jm = spotcheck.job_manager
    jm.setPrice(spotcheck.model_id, JOB_FEE, sender=node)
    cheap = make_job(commit=False)  # at the price of the time
    kept = make_job(commit=False, fee=2 * JOB_FEE)  # above the later price
    jm.setPrice(spotcheck.model_id, 2 * JOB_FEE, sender=node)
    advance(chain, TEST_PARAMS.commit_timeout + 1)
    receipt = jm.cancelJob(cheap, sender=requester)
    assert not list(receipt.events.filter(jm.LivenessFailure))
    assert jm.livenessFailures(node) == 0 and jm.credits(requester) == JOB_FEE
    jm.setPrice(spotcheck.model_id, JOB_FEE // 2, sender=node)  # a cut: the fee still meets it
    receipt = jm.cancelJob(kept, sender=requester)
    [failure] = receipt.events.filter(jm.LivenessFailure)
    assert failure.totalFailures == 1 and jm.livenessFailures(node) == 1


def test_feeOnTransferToken_refusedWhereverTokensArePulled(
    project: Any, deployer: Any, node: Any, requester: Any
) -> None:
    """A token that delivers less than was sent would make the contracts insolvent."""
    from spotcheck.chain import DeployParams, SpotcheckContracts
    from spotcheck.deploy import deploy_all

    fee_token = deployer.deploy(project.FeeOnTransferToken)
    dep = deploy_all(deployer, DeployParams(min_stake=1, token=str(fee_token.address)))
    c = SpotcheckContracts(dep)
    for actor in (node, requester):
        fee_token.mint(actor, 10**24, sender=deployer)
        for spender in (c.stake_manager, c.job_manager, c.dispute_manager):
            fee_token.approve(spender, 2**256 - 1, sender=actor)
    with ape.reverts(c.stake_manager.FeeOnTransferToken):
        c.stake_manager.stake(1000, sender=node)
    verifier = deployer.deploy(project.MockVerifier)
    struct = MOCK_MODEL.as_struct(str(verifier.address), b"\x01" * 32, b"\x02" * 32)
    model_id = c.model_registry.registerModel(struct, sender=deployer).return_value
    with ape.reverts(c.job_manager.FeeOnTransferToken):
        c.job_manager.requestJob(model_id, JOB_INPUT, node, 1000, sender=requester)
    # Charged only on the way into DisputeManager: stake and fees arrive whole, the bond not.
    fee_token.setFeeTarget(c.dispute_manager, sender=deployer)
    c.stake_manager.stake(10**22, sender=node)
    job_id = c.job_manager.requestJob(
        model_id, JOB_INPUT, node, 1000, sender=requester
    ).return_value
    c.job_manager.commitResult(job_id, IN_HASH, JOB_OUTPUT, sender=node)
    with ape.reverts(c.dispute_manager.FeeOnTransferToken):
        c.dispute_manager.openDispute(job_id, hash_vector(JOB_OUTPUT), sender=requester)
