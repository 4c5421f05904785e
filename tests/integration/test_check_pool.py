"""CheckPool on anvil (issue 15): registration with a proof of possession, the seed rule,
paid VRF claims (single and batched), collect, forfeit to the disputer, exit.

Attack first: every refusal below is an attack on one guarantee (a blind, replayed, stolen,
late or batched-and-cancelling claim; a reused key; an exit that would escape a forfeit)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import ape
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from py_ecc.optimized_bn128 import G1, add, multiply, neg, normalize

from spotcheck import check_pool as cp
from spotcheck import vrf
from spotcheck.chain import TOKEN, ClaimStatus, Deployment, JobStatus, SpotcheckContracts
from spotcheck.encoding import hash_vector, onchain_job_key
from spotcheck.errors import ChainError, ConfigError
from tests.fixtures.chain import (
    BURN,
    FUNDING,
    JOB_FEE,
    JOB_INPUT,
    JOB_OUTPUT,
    MOCK_MODEL,
    TEST_PARAMS,
    advance,
    defence_instances,
)

pytestmark = pytest.mark.chain

SHARE_BPS = 2000  # 20 % of a claimed job's fee goes to its claimants
MIN_BOND = TEST_PARAMS.check_min_bond
COLLATERAL = TEST_PARAMS.check_claim_collateral
KEY_A = vrf.keypair(0xA11CE)
KEY_B = vrf.keypair(0xB0B)
OUT_HASH = hash_vector(JOB_OUTPUT)


@pytest.fixture
def pool(spotcheck: Any, deployer: Any) -> Any:
    p = spotcheck.contracts.check_pool
    cp.set_model_terms(p, spotcheck.model_id, SHARE_BPS, 10_000, sender=deployer)
    return p


@pytest.fixture
def claimers(accounts: Any, spotcheck: Any, pool: Any, deployer: Any) -> tuple[Any, Any]:
    """Two funded accounts with the pool approved (not yet registered)."""
    a, b = accounts[6], accounts[7]
    for who in (a, b):
        spotcheck.token.mint(who, FUNDING, sender=deployer)
        spotcheck.token.approve(pool, 2**256 - 1, sender=who)
    return a, b


@pytest.fixture
def registered(pool: Any, claimers: tuple[Any, Any]) -> tuple[Any, Any]:
    a, b = claimers
    cp.register(pool, KEY_A, MIN_BOND, sender=a)
    cp.register(pool, KEY_B, MIN_BOND, sender=b)
    return a, b


def _seed(chain: Any, job_manager: Any, job_id: int) -> bytes:
    """The job's seed: the hash of block commitBlock + 1 (mined here if need be)."""
    commit_block = int(job_manager.getJob(job_id).commitBlock)
    if chain.blocks.height < commit_block + 1:
        chain.mine(1)
    return bytes(chain.blocks[commit_block + 1].hash)


def _proof(key: vrf.KeyPair, seed: bytes, job_id: int) -> list[int]:
    return list(vrf.prove(key.secret, seed, onchain_job_key(job_id)).words())


@pytest.fixture
def committed(make_job: Callable[..., int], chain: Any, spotcheck: Any) -> tuple[int, bytes]:
    job_id = make_job()
    return job_id, _seed(chain, spotcheck.job_manager, job_id)


# ---------------------------------------------------------------- registration


def test_register_validPop_storesKeyAndBond_andPullsIt(
    pool: Any, claimers: tuple[Any, Any], spotcheck: Any
) -> None:
    a, _ = claimers
    before = spotcheck.token.balanceOf(a)
    tx = cp.register(pool, KEY_A, MIN_BOND, sender=a)
    c = pool.getChallenger(a)
    assert c.registered and c.bond == MIN_BOND and c.openClaims == 0
    assert list(c.publicKey) == list(KEY_A.public.words())
    [event] = tx.receipt.events.filter(pool.ChallengerRegistered)
    assert pool.keyOwner(event.keyHash) == a
    assert spotcheck.token.balanceOf(a) == before - MIN_BOND
    assert pool.freeBond(a) == MIN_BOND


def test_register_badPop_wrongKeysPop_reusedKey_lowBond_twice_allRefused(
    pool: Any, claimers: tuple[Any, Any]
) -> None:
    a, b = claimers
    pk = list(KEY_A.public.words())
    pop_a = list(cp.possession(pool, KEY_A, a.address).words())
    pop_b = list(cp.possession(pool, KEY_B, a.address).words())
    # a PoP made by another key (the rogue-key attack: claim a key whose secret you lack)
    with ape.reverts(pool.InvalidPossession):
        pool.register(pk, pop_b, MIN_BOND, sender=a)
    # a VRF proof is not a PoP (other domain)
    not_pop = list(vrf.prove(KEY_A.secret, b"\x01" * 32, b"\x02" * 32).words())
    with ape.reverts(pool.InvalidPossession):
        pool.register(pk, not_pop, MIN_BOND, sender=a)
    with ape.reverts(pool.BondBelowMinimum, bond=MIN_BOND - 1, minBond=MIN_BOND):
        pool.register(pk, pop_a, MIN_BOND - 1, sender=a)
    pool.register(pk, pop_a, MIN_BOND, sender=a)
    with ape.reverts(pool.AlreadyRegistered, challenger=a):
        pool.register(list(KEY_B.public.words()), pop_b, MIN_BOND, sender=a)
    # the same key's public PoP copied by a second address (before a registered it, the copy
    # is refused as InvalidPossession: test_audit4_registerFrontRun_...)
    with ape.reverts(pool.KeyAlreadyRegistered):
        pool.register(pk, pop_a, MIN_BOND, sender=b)
    # the key's owner registering it again from a second address (it can make b's PoP)
    with ape.reverts(pool.KeyAlreadyRegistered):
        pool.register(pk, list(cp.possession(pool, KEY_A, b.address).words()), MIN_BOND, sender=b)


def test_register_keyOfAnExitedChallenger_staysBurnt(
    pool: Any, registered: tuple[Any, Any], chain: Any
) -> None:
    a, _ = registered
    pool.requestExit(sender=a)
    advance(chain, TEST_PARAMS.check_exit_delay)
    pool.withdrawBond(sender=a)
    assert not pool.getChallenger(a).registered
    pop = list(cp.possession(pool, KEY_A, a.address).words())
    with ape.reverts(pool.KeyAlreadyRegistered):
        pool.register(list(KEY_A.public.words()), pop, MIN_BOND, sender=a)


# ---------------------------------------------------------------- claims


def test_claim_validProof_paidOnceFinal_nodeKeepsTheRest(
    pool: Any,
    registered: tuple[Any, Any],
    committed: tuple[int, bytes],
    spotcheck: Any,
    node: Any,
    outsider: Any,
    chain: Any,
) -> None:
    a, _ = registered
    job_id, seed = committed
    tx = cp.claim(pool, cp.Claim(job_id, vrf.G1Point(*_proof(KEY_A, seed, job_id))), sender=a)
    assert pool.seedOf(onchain_job_key(job_id)) == seed  # the first claim records the seed
    assert cp.claim_status(pool, job_id, str(a)) == ClaimStatus.OPEN
    assert pool.freeBond(a) == MIN_BOND - COLLATERAL
    [event] = tx.receipt.events.filter(pool.CheckClaimed)
    assert event.claimCount == 1
    # not final yet: nothing to collect
    with ape.reverts(pool.JobNotFinal):
        pool.collect(job_id, sender=a)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    jm = spotcheck.job_manager
    jm.finalize(job_id, sender=outsider)
    reward = JOB_FEE * SHARE_BPS // 10_000
    assert jm.credits(node) == JOB_FEE - reward
    assert spotcheck.token.balanceOf(pool) == 2 * MIN_BOND + reward
    before = spotcheck.token.balanceOf(a)
    cp.collect(pool, job_id, sender=a)
    assert spotcheck.token.balanceOf(a) == before + reward
    assert pool.freeBond(a) == MIN_BOND
    assert cp.claim_status(pool, job_id, str(a)) == ClaimStatus.COLLECTED
    with ape.reverts(pool.NoOpenClaim):
        pool.collect(job_id, sender=a)


def test_unclaimedJob_paysTheWholeFeeToTheNode(
    pool: Any, committed: tuple[int, bytes], spotcheck: Any, node: Any, outsider: Any, chain: Any
) -> None:
    job_id, _ = committed
    advance(chain, MOCK_MODEL.challenge_window + 1)
    spotcheck.job_manager.finalize(job_id, sender=outsider)
    assert spotcheck.job_manager.credits(node) == JOB_FEE


def test_twoClaimants_splitTheRewardExactly(
    pool: Any,
    registered: tuple[Any, Any],
    make_job: Callable[..., int],
    spotcheck: Any,
    outsider: Any,
    chain: Any,
) -> None:
    a, b = registered
    fee = 5 * TOKEN + 3  # reward 1e18 + 0 (floor), odd split: dust goes to the last collector
    job_id = make_job(fee=fee)
    seed = _seed(chain, spotcheck.job_manager, job_id)
    pool.claim(job_id, _proof(KEY_A, seed, job_id), sender=a)
    pool.claim(job_id, _proof(KEY_B, seed, job_id), sender=b)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    spotcheck.job_manager.finalize(job_id, sender=outsider)
    reward = fee * SHARE_BPS // 10_000
    token = spotcheck.token
    a0, b0 = token.balanceOf(a), token.balanceOf(b)
    pool.collect(job_id, sender=b)
    pool.collect(job_id, sender=a)
    assert token.balanceOf(b) - b0 == reward // 2
    assert token.balanceOf(a) - a0 == reward - reward // 2
    assert token.balanceOf(pool) == 2 * MIN_BOND  # the reward left in full, no dust


def test_claim_notInTheSample_reverts_NotSampled(
    pool: Any,
    registered: tuple[Any, Any],
    committed: tuple[int, bytes],
    spotcheck: Any,
    deployer: Any,
) -> None:
    a, _ = registered
    job_id, seed = committed
    proof = _proof(KEY_A, seed, job_id)
    rate = 1  # 0.01 %: find a rate this proof misses (output above the threshold)
    assert not vrf.sampled_bps(vrf.G1Point(*proof), rate)
    pool.setModelTerms(spotcheck.model_id, SHARE_BPS, rate, sender=deployer)
    with ape.reverts(pool.NotSampled, jobId=job_id):
        pool.claim(job_id, proof, sender=a)


def test_claim_replayed_reverts_AlreadyClaimed(
    pool: Any, registered: tuple[Any, Any], committed: tuple[int, bytes]
) -> None:
    a, _ = registered
    job_id, seed = committed
    proof = _proof(KEY_A, seed, job_id)
    pool.claim(job_id, proof, sender=a)
    with ape.reverts(pool.AlreadyClaimed, jobId=job_id, claimant=a):
        pool.claim(job_id, proof, sender=a)


def test_claim_withAnotherChallengersProof_reverts_InvalidProof(
    pool: Any, registered: tuple[Any, Any], committed: tuple[int, bytes], accounts: Any
) -> None:
    _, b = registered
    job_id, seed = committed
    stolen = _proof(KEY_A, seed, job_id)  # public once a claims it (mempool or event)
    with ape.reverts(pool.InvalidProof, jobId=job_id):
        pool.claim(job_id, stolen, sender=b)
    # a proof of another job, another seed: refused too
    with ape.reverts(pool.InvalidProof, jobId=job_id):
        pool.claim(job_id, _proof(KEY_B, seed, job_id + 1), sender=b)
    with ape.reverts(pool.InvalidProof, jobId=job_id):
        pool.claim(job_id, _proof(KEY_B, b"\x00" * 31 + b"\x01", job_id), sender=b)
    with ape.reverts(pool.NotRegistered):
        pool.claim(job_id, stolen, sender=accounts[8])


def test_claim_onAFinalJob_orAfterTheWindow_reverts(
    pool: Any,
    registered: tuple[Any, Any],
    committed: tuple[int, bytes],
    spotcheck: Any,
    outsider: Any,
    chain: Any,
) -> None:
    a, _ = registered
    job_id, seed = committed
    proof = _proof(KEY_A, seed, job_id)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    # outcome known (no dispute can open any more) but not finalized: too late
    with ape.reverts(pool.ClaimWindowClosed, jobId=job_id):
        pool.claim(job_id, proof, sender=a)
    spotcheck.job_manager.finalize(job_id, sender=outsider)
    with ape.reverts(pool.NotClaimable, jobId=job_id, status=JobStatus.FINAL):
        pool.claim(job_id, proof, sender=a)


def test_claim_onADisputedOrSlashedJob_reverts_NotClaimable(
    pool: Any,
    registered: tuple[Any, Any],
    committed: tuple[int, bytes],
    spotcheck: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    a, _ = registered
    job_id, seed = committed
    proof = _proof(KEY_A, seed, job_id)
    dm = spotcheck.dispute_manager
    dm.openDispute(job_id, OUT_HASH, sender=challenger)
    with ape.reverts(pool.NotClaimable, jobId=job_id, status=JobStatus.DISPUTED):
        pool.claim(job_id, proof, sender=a)
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(onchain_job_key(job_id), sender=outsider)
    with ape.reverts(pool.NotClaimable, jobId=job_id, status=JobStatus.INVALID):
        pool.claim(job_id, proof, sender=a)


def test_claim_onAJobThatEndsInvalid_burnsItsCollateral(
    pool: Any,
    registered: tuple[Any, Any],
    committed: tuple[int, bytes],
    spotcheck: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    a, b = registered
    job_id, seed = committed
    pool.claim(job_id, _proof(KEY_A, seed, job_id), sender=a)  # blind claim on a bad job
    dm = spotcheck.dispute_manager
    dm.openDispute(job_id, OUT_HASH, sender=challenger)
    with ape.reverts(pool.JobNotInvalid):
        pool.forfeit(job_id, a, sender=outsider)
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(onchain_job_key(job_id), sender=outsider)
    with ape.reverts(pool.NoOpenClaim):
        pool.forfeit(job_id, b, sender=outsider)  # b never claimed
    burned_before = spotcheck.token.balanceOf(BURN)
    tx = cp.forfeit(pool, job_id, str(a), sender=outsider)
    [event] = tx.receipt.events.filter(pool.CollateralForfeited)
    assert (event.claimant, event.amount) == (a, COLLATERAL)
    assert spotcheck.token.balanceOf(BURN) == burned_before + COLLATERAL  # burned, nobody's
    assert pool.getChallenger(a).bond == MIN_BOND - COLLATERAL
    assert pool.getChallenger(a).openClaims == 0
    assert cp.claim_status(pool, job_id, str(a)) == ClaimStatus.FORFEITED
    with ape.reverts(pool.NoOpenClaim):
        pool.forfeit(job_id, a, sender=outsider)
    # solvency: what is left is exactly the two bonds after the forfeit
    assert spotcheck.token.balanceOf(pool) == 2 * MIN_BOND - COLLATERAL
    with ape.reverts(pool.JobNotFinal):
        pool.collect(job_id, sender=a)


def test_claims_lockCollateral_untilTheBondIsUsedUp(
    pool: Any, registered: tuple[Any, Any], make_job: Callable[..., int], spotcheck: Any, chain: Any
) -> None:
    a, _ = registered
    per_bond = MIN_BOND // COLLATERAL
    jobs = [make_job() for _ in range(per_bond + 1)]
    chain.mine(1)
    for job_id in jobs[:per_bond]:
        pool.claim(
            job_id, _proof(KEY_A, _seed(chain, spotcheck.job_manager, job_id), job_id), sender=a
        )
    last = jobs[-1]
    with ape.reverts(pool.InsufficientFreeBond, challenger=a, free=0, need=COLLATERAL):
        pool.claim(last, _proof(KEY_A, _seed(chain, spotcheck.job_manager, last), last), sender=a)
    pool.addBond(COLLATERAL, sender=a)
    pool.claim(last, _proof(KEY_A, _seed(chain, spotcheck.job_manager, last), last), sender=a)


# ---------------------------------------------------------------- seed rule


def test_seed_beforeItsBlock_andAfter256Blocks_isRefused_recordedOneStays(
    pool: Any,
    registered: tuple[Any, Any],
    make_job: Callable[..., int],
    spotcheck: Any,
    chain: Any,
    register_model: Callable[..., bytes],
    project: Any,
    deployer: Any,
) -> None:
    a, _ = registered
    # a model whose challenge window outlasts 257 blocks of one second each
    verifier = deployer.deploy(project.MockVerifier)
    long_model = register_model(
        verifier, replace(MOCK_MODEL, challenge_window=700, proof_window=100), tag=b"long"
    )
    pool.setModelTerms(long_model, SHARE_BPS, 10_000, sender=deployer)
    lost = make_job(model_id=long_model)
    kept = make_job(model_id=long_model)
    jm = spotcheck.job_manager
    seed_kept = _seed(chain, jm, kept)
    pool.recordSeed(kept, sender=a)
    assert pool.seedOf(onchain_job_key(kept)) == seed_kept
    lost_block = int(jm.getJob(lost).commitBlock)
    seed_lost = bytes(chain.blocks[lost_block + 1].hash)
    chain.mine(BLOCKS_PAST_WINDOW := 260)
    assert BLOCKS_PAST_WINDOW > cp.BLOCKHASH_WINDOW
    assert jm.getJob(lost).status == JobStatus.COMMITTED
    assert not cp.seed_readable(lost_block, chain.blocks.height + 1)
    with ape.reverts(pool.SeedUnavailable):
        pool.claim(lost, _proof(KEY_A, seed_lost, lost), sender=a)
    with ape.reverts(pool.SeedUnavailable):
        pool.recordSeed(lost, sender=a)
    pool.claim(kept, _proof(KEY_A, seed_kept, kept), sender=a)  # recorded in time: claimable


def test_recordSeed_inTheSeedBlockItself_reverts_SeedNotYetAvailable(
    pool: Any, make_job: Callable[..., int], spotcheck: Any, chain: Any, outsider: Any
) -> None:
    # automine: the commit is block N, the next transaction block N + 1, whose own hash is
    # not known inside it
    job_id = make_job()
    commit_block = int(spotcheck.job_manager.getJob(job_id).commitBlock)
    assert chain.blocks.height == commit_block
    with ape.reverts(
        pool.SeedNotYetAvailable, commitBlock=commit_block, blockNumber=commit_block + 1
    ):
        pool.recordSeed(job_id, sender=outsider)
    seed = bytes(pool.recordSeed(job_id, sender=outsider).return_value)
    assert (
        seed == bytes(chain.blocks[commit_block + 1].hash) == pool.seedOf(onchain_job_key(job_id))
    )


# ---------------------------------------------------------------- batched claims


def _jobs_with_seeds(
    n: int, make_job: Callable[..., int], chain: Any, jm: Any
) -> list[tuple[int, bytes]]:
    jobs = [make_job() for _ in range(n)]
    chain.mine(1)
    return [(j, _seed(chain, jm, j)) for j in jobs]


def test_claimBatch_validBatch_accepted_eachClaimOpen(
    pool: Any, registered: tuple[Any, Any], make_job: Callable[..., int], spotcheck: Any, chain: Any
) -> None:
    a, _ = registered
    jobs = _jobs_with_seeds(4, make_job, chain, spotcheck.job_manager)
    claims = [cp.Claim(j, vrf.G1Point(*_proof(KEY_A, s, j))) for j, s in jobs]
    cp.claim_batch(pool, claims, sender=a)
    for j, _ in jobs:
        assert cp.claim_status(pool, j, str(a)) == ClaimStatus.OPEN
    assert pool.getChallenger(a).openClaims == 4


def test_claimBatch_oneBadProof_refusesTheBatch(
    pool: Any, registered: tuple[Any, Any], make_job: Callable[..., int], spotcheck: Any, chain: Any
) -> None:
    a, _ = registered
    jobs = _jobs_with_seeds(3, make_job, chain, spotcheck.job_manager)
    proofs = [_proof(KEY_A, s, j) for j, s in jobs]
    proofs[1] = _proof(KEY_B, jobs[1][1], jobs[1][0])  # another key's proof in the middle
    with ape.reverts(pool.InvalidBatchProof):
        pool.claimBatch([j for j, _ in jobs], proofs, sender=a)
    assert pool.getChallenger(a).openClaims == 0


def test_claimBatch_errorsThatCancelInAPlainSum_areRefused(
    pool: Any, registered: tuple[Any, Any], make_job: Callable[..., int], spotcheck: Any, chain: Any
) -> None:
    """sig_1 + E and sig_2 - E: the plain sum equals the honest sum (so a plain aggregate
    pairing check would pass), but each is a wrong proof with its own, ground output."""
    a, _ = registered
    jobs = _jobs_with_seeds(2, make_job, chain, spotcheck.job_manager)
    honest = [vrf.prove(KEY_A.secret, s, onchain_job_key(j)) for j, s in jobs]
    err = multiply(G1, 0xE7707)
    forged = [add(honest[0]._jac(), err), add(honest[1]._jac(), neg(err))]
    words = [[int(c) for c in normalize(p)] for p in forged]
    plain_forged = normalize(add(forged[0], forged[1]))
    plain_honest = normalize(add(honest[0]._jac(), honest[1]._jac()))
    assert plain_forged == plain_honest  # a plain sum cannot tell them apart
    assert not vrf.verify(
        KEY_A.public, jobs[0][1], onchain_job_key(jobs[0][0]), vrf.G1Point(*words[0])
    )
    with ape.reverts(pool.InvalidBatchProof):
        pool.claimBatch([j for j, _ in jobs], words, sender=a)


def test_claimBatch_duplicateJob_tooLarge_mismatched_areRefused(
    pool: Any, registered: tuple[Any, Any], committed: tuple[int, bytes]
) -> None:
    a, _ = registered
    job_id, seed = committed
    proof = _proof(KEY_A, seed, job_id)
    with ape.reverts(pool.AlreadyClaimed, jobId=job_id, claimant=a):
        pool.claimBatch([job_id, job_id], [proof, proof], sender=a)
    too_many = cp.MAX_BATCH_CLAIMS + 1
    with ape.reverts(pool.BatchTooLarge, length=too_many, max=cp.MAX_BATCH_CLAIMS):
        pool.claimBatch([job_id] * too_many, [proof] * too_many, sender=a)
    with ape.reverts(pool.LengthMismatch):
        pool.claimBatch([job_id], [proof, proof], sender=a)
    with ape.reverts(pool.EmptyBatch):
        pool.claimBatch([], [], sender=a)


# ---------------------------------------------------------------- exit


def test_exit_withOpenClaims_refused_untilTheyResolve(
    pool: Any,
    registered: tuple[Any, Any],
    committed: tuple[int, bytes],
    spotcheck: Any,
    outsider: Any,
    chain: Any,
) -> None:
    a, _ = registered
    job_id, seed = committed
    pool.claim(job_id, _proof(KEY_A, seed, job_id), sender=a)
    with ape.reverts(pool.NotExiting):
        pool.withdrawBond(sender=a)
    pool.requestExit(sender=a)
    with ape.reverts(pool.Exiting, challenger=a):
        pool.claim(job_id + 1, [1, 2], sender=a)
    with ape.reverts(pool.ExitDelayNotOver):
        pool.withdrawBond(sender=a)
    advance(chain, TEST_PARAMS.check_exit_delay)
    with ape.reverts(pool.ClaimsOpen, challenger=a, openClaims=1):
        pool.withdrawBond(sender=a)
    spotcheck.job_manager.finalize(job_id, sender=outsider)
    pool.collect(job_id, sender=a)
    before = spotcheck.token.balanceOf(a)
    pool.withdrawBond(sender=a)
    assert spotcheck.token.balanceOf(a) == before + MIN_BOND


def test_setModelTerms_onlyRegistrar_andBounded(
    pool: Any, spotcheck: Any, deployer: Any, outsider: Any
) -> None:
    with ape.reverts(pool.NotRegistrar, caller=outsider):
        pool.setModelTerms(spotcheck.model_id, SHARE_BPS, 100, sender=outsider)
    with ape.reverts(pool.InvalidTerms):
        pool.setModelTerms(spotcheck.model_id, 5001, 100, sender=deployer)
    with ape.reverts(pool.InvalidTerms):
        pool.setModelTerms(spotcheck.model_id, SHARE_BPS, 10_001, sender=deployer)


def test_onJobFinalized_onlyJobManager(pool: Any, outsider: Any) -> None:
    with ape.reverts(pool.NotJobManager, caller=outsider):
        pool.onJobFinalized(1, b"\x00" * 32, 10, sender=outsider)


# ---------------------------------------------------------------- property


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    other_secret=st.integers(min_value=1, max_value=vrf.R - 1),
    other_seed=st.binary(min_size=32, max_size=32),
    other_job=st.integers(min_value=0, max_value=2**64),
)
def test_claim_wrongKeyMessageOrSeed_rejectedOnChain(
    pool: Any,
    registered: tuple[Any, Any],
    committed: tuple[int, bytes],
    chain: Any,
    other_secret: int,
    other_seed: bytes,
    other_job: int,
) -> None:
    a, _ = registered
    job_id, seed = committed
    ref = onchain_job_key(job_id)
    wrong = []
    if other_secret != KEY_A.secret:
        wrong.append(vrf.prove(other_secret, seed, ref))
    if other_seed != seed:
        wrong.append(vrf.prove(KEY_A.secret, other_seed, ref))
    if other_job != job_id:
        wrong.append(vrf.prove(KEY_A.secret, seed, onchain_job_key(other_job)))
    for sig in wrong:
        with chain.isolate(), ape.reverts(pool.InvalidProof, jobId=job_id):
            pool.claim(job_id, list(sig.words()), sender=a)


def test_jobManagerWiring_setOnce_byDeployer_markedOnlyByThePool(
    pool: Any, spotcheck: Any, deployer: Any, outsider: Any, committed: tuple[int, bytes]
) -> None:
    jm = spotcheck.job_manager
    assert jm.checkPool() == pool.address
    with ape.reverts(jm.NotDeployer, caller=outsider):
        jm.setCheckPool(outsider, sender=outsider)
    with ape.reverts(jm.AlreadyInitialized):
        jm.setCheckPool(outsider, sender=deployer)
    job_id, _ = committed
    with ape.reverts(jm.NotCheckPool, caller=outsider):
        jm.markCheckClaimed(job_id, sender=outsider)
    assert not jm.getJob(job_id).checkClaimed


def test_deploymentFile_withoutCheckPool_loads_andSaysSoInOneLine(spotcheck: Any) -> None:
    data = json.loads(spotcheck.deployment.to_json())
    assert data["checkPool"] == spotcheck.contracts.check_pool.address
    del data["checkPool"]  # a file written before issue 15
    old = Deployment.from_json(json.dumps(data))
    assert old.check_pool is None and old.job_manager == spotcheck.deployment.job_manager
    with pytest.raises(ChainError, match="no CheckPool") as err:
        _ = SpotcheckContracts(old).check_pool
    assert "\n" not in str(err.value)


def test_pythonHelpers_refuseBadArgumentsBeforeSending(pool: Any, deployer: Any) -> None:
    with pytest.raises(ConfigError):
        cp.set_model_terms(pool, b"\x00" * 32, cp.MAX_CHECK_SHARE_BPS + 1, 100, sender=deployer)
    with pytest.raises(ConfigError):
        cp.claim_batch(pool, [], sender=deployer)
    with pytest.raises(ConfigError):
        cp.register(pool, KEY_A, 0, sender=deployer)
    with pytest.raises(ChainError, match=r"CheckPool\.recordSeed failed"):
        cp.record_seed(pool, 999, sender=deployer)
    assert cp.seed_readable(10, 12) and not cp.seed_readable(10, 11)
    assert cp.seed_readable(10, 11 + 256) and not cp.seed_readable(10, 12 + 256)


def test_claimedJob_disputedThenDefended_paysClaimants_fromTheDefence(
    pool: Any,
    registered: tuple[Any, Any],
    committed: tuple[int, bytes],
    spotcheck: Any,
    node: Any,
    challenger: Any,
    outsider: Any,
) -> None:
    """A correct job that a challenger disputes anyway: the valid defence makes it final
    (JobManager.onJobProven -> the pool's reward hook), the claimant is paid, nobody forfeits."""
    a, _ = registered
    job_id, seed = committed
    pool.claim(job_id, _proof(KEY_A, seed, job_id), sender=a)
    dm = spotcheck.dispute_manager
    dm.openDispute(job_id, OUT_HASH, sender=challenger)
    dm.defend(
        onchain_job_key(job_id),
        b"proof",
        defence_instances(JOB_INPUT, JOB_OUTPUT),
        JOB_OUTPUT,
        sender=node,
    )
    reward = JOB_FEE * SHARE_BPS // 10_000
    assert spotcheck.job_manager.credits(node) == JOB_FEE - reward
    with ape.reverts(pool.JobNotInvalid):
        pool.forfeit(job_id, a, sender=outsider)
    before = spotcheck.token.balanceOf(a)
    pool.collect(job_id, sender=a)
    assert spotcheck.token.balanceOf(a) == before + reward


def test_claimedConsumerJob_tooLittleGas_neverFinalizesWithoutItsCallback(
    pool: Any,
    registered: tuple[Any, Any],
    spotcheck: Any,
    node: Any,
    deployer: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """The reward hook runs before the consumer callback; the 63/64 guard still decides: a
    finalize with too little gas reverts as a whole (the job stays Committed), never a final
    job whose callback was starved."""
    a, _ = registered
    consumer, jm = spotcheck.example_consumer, spotcheck.job_manager
    spotcheck.token.mint(consumer, 100 * JOB_FEE, sender=deployer)
    job_id = int(
        consumer.request(spotcheck.model_id, JOB_INPUT, node, JOB_FEE, sender=deployer).return_value
    )
    jm.commitResult(job_id, hash_vector(JOB_INPUT), JOB_OUTPUT, sender=node)
    pool.claim(job_id, _proof(KEY_A, _seed(chain, jm, job_id), job_id), sender=a)
    advance(chain, MOCK_MODEL.challenge_window + 1)
    for gas in (110_000, 125_000, 140_000):
        with ape.reverts():
            jm.finalize(job_id, sender=outsider, gas=gas)
        assert jm.getJob(job_id).status == JobStatus.COMMITTED
    jm.finalize(job_id, sender=outsider)
    assert consumer.finalOutputHash(job_id) == OUT_HASH
    pool.collect(job_id, sender=a)
