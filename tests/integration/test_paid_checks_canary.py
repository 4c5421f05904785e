"""Paid checks against a canary on anvil (issue 15): a lazy claimant loses money, a diligent
challenger earns.

A canary node commits ``N_JOBS`` on-chain jobs and cheats on a known schedule (every
``CHEAT_EVERY``-th job's output is off by more than tau); its operator disputes, from a second
address, every cheat nobody else disputed, so every cheat ends Invalid. Two registered
challengers sample the jobs by their own BLS VRF keys at ``SAMPLING_BPS``:

- the **diligent** one re-runs every job it sampled (it knows the model's output rule,
  :func:`_rerun`), claims the correct ones in batches and disputes the wrong ones;
- the **lazy** one claims every job it sampled without re-running it.

Claims land before disputes (the order ``economics_checks.CheckGame`` assumes). After the
windows: disputes settled, jobs finalized, every final claim collected, every claim on an
invalid job forfeited (by an outsider: anyone may), credits withdrawn, bonds withdrawn after
exit, so each challenger's net is a plain token-balance difference. The test asserts the sign
of both nets, the exact amount each net must be from the contracts' rules and the counts, and
prints both next to the prediction of ``spotcheck.economics_checks`` for the same terms.

Also here: a claim after the job was disputed is refused and a final job cannot be
forfeited; and the contract's rule behind audit A4-1: when a node lets a correct job go
undefended against its own second address's dispute and nobody else defends it either, every
claim on it is forfeited (the operator cannot profit from it since the forfeit cap); a
claimant that proves the job itself keeps its collateral and is paid (the challenger service
does so: ``challenger.defence``).

``_seed`` mirrors the private helper of ``tests/integration/test_check_pool.py`` (private
there, so written again here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import ape
import pytest

from spotcheck import check_pool as cp
from spotcheck import vrf
from spotcheck.chain import TOKEN, ClaimStatus, JobStatus
from spotcheck.economics_checks import CheckTerms, check_game
from spotcheck.encoding import onchain_job_key
from tests.fixtures.chain import FUNDING, MOCK_MODEL, TEST_PARAMS, advance, defence_instances

pytestmark = pytest.mark.chain

#: Jobs the canary commits, and its schedule: job index i is a cheat iff i % CHEAT_EVERY ==
#: CHEAT_EVERY - 1 (10 cheats in 40 jobs, canary rate k = 25 %).
N_JOBS = 40
CHEAT_EVERY = 4
#: The fee of each job (1 token; the model's default R is 1.25). With the deployment's claim
#: collateral L = 10 tokens, one forfeit outweighs up to 20 uncontested claims, so a lazy
#: claimant that meets even one cheat ends negative unless it also sampled ~2/3 of the 30
#: correct jobs alone (probability ~1e-8 over the block-hash seeds; see _first_key_sampling).
FEE = 1 * TOKEN
#: Check share and sampling rate of the canary's model (CheckPool.setModelTerms).
SHARE_BPS = 5000  # the model's default check_share (0.5), CheckPool's maximum
SAMPLING_BPS = 5000  # each challenger samples half the jobs: ~20 each in this run
#: The mock model with a challenge window that outlasts the set-up of 40 jobs (one block per
#: transaction, one second or more each); slash 100, challenger bond 10, bounty 25 %.
CANARY_MODEL = replace(MOCK_MODEL, challenge_window=600, proof_window=100)
#: The part of a canary-model slash that is burned: the cap on forfeits credited per job.
SLASH_BURNED = CANARY_MODEL.slash_amount * (10_000 - CANARY_MODEL.bounty_bps) // 10_000
COLLATERAL = TEST_PARAMS.check_claim_collateral
#: Bond each challenger registers: enough to back a claim on every job.
BOND = N_JOBS * COLLATERAL
#: First secrets tried for the two keys (then +1, +2, ... until the key samples a cheat).
DILIGENT_SECRET = 0xD111_6E27
LAZY_SECRET = 1
MAX_KEY_TRIES = 64
MAX_UINT = 2**256 - 1


def _input(i: int) -> list[int]:
    return [i + 1, -(i + 2), 3 * i, 7]


def _rerun(x: Sequence[int]) -> list[int]:
    """The mock model's output rule (the fixtures' JOB_INPUT [1, -2, 3, 4] -> JOB_OUTPUT
    [10, -20]): ten times the first two inputs. The diligent challenger's "re-run"."""
    return [10 * x[0], 10 * x[1]]


def _is_cheat(i: int) -> bool:
    return i % CHEAT_EVERY == CHEAT_EVERY - 1


def _canary_output(i: int) -> list[int]:
    out = _rerun(_input(i))
    if _is_cheat(i):
        out[0] += CANARY_MODEL.tau + 1  # wrong by more than tau
    return out


def _within_tau(a: Sequence[int], b: Sequence[int]) -> bool:
    return len(a) == len(b) and all(
        abs(x - y) <= CANARY_MODEL.tau for x, y in zip(a, b, strict=True)
    )


def _seed(chain: Any, job_manager: Any, job_id: int) -> bytes:
    """The job's seed: the hash of block commitBlock + 1 (mined here if need be)."""
    commit_block = int(job_manager.getJob(job_id).commitBlock)
    if chain.blocks.height < commit_block + 1:
        chain.mine(1)
    return bytes(chain.blocks[commit_block + 1].hash)


def _sample(key: vrf.KeyPair, seeds: dict[int, bytes]) -> dict[int, cp.Claim]:
    """The jobs ``key`` samples, with the claim (VRF proof) for each."""
    claims = {j: cp.make_claim(key, j, s, SAMPLING_BPS) for j, s in seeds.items()}
    return {j: c for j, c in claims.items() if c is not None}


def _first_key_sampling(
    start: int, seeds: dict[int, bytes], cheats: set[int]
) -> tuple[vrf.KeyPair, dict[int, cp.Claim]]:
    """The first key with secret start, start + 1, ... whose sample holds at least one cheat.

    The seeds are anvil block hashes, which depend on wall-clock timestamps: they differ from
    run to run, so a fixed secret samples a cheat only with probability 1 - 2**-10. Stepping
    the secret deterministically until the sample holds one keeps the test about the economics
    (a key that met no canary has nothing to lose), not about the luck of one run. Nothing
    else about the sample is chosen."""
    for secret in range(start, start + MAX_KEY_TRIES):
        key = vrf.keypair(secret)
        sample = _sample(key, seeds)
        if cheats & sample.keys():
            return key, sample
    raise AssertionError(f"no secret in {start}..{start + MAX_KEY_TRIES - 1} sampled a cheat")


def _claim_in_batches(pool: Any, claims: list[cp.Claim], sender: Any) -> None:
    for i in range(0, len(claims), cp.MAX_BATCH_CLAIMS):
        cp.claim_batch(pool, claims[i : i + cp.MAX_BATCH_CLAIMS], sender=sender)


@dataclass
class Tally:
    """One challenger's run: counts, and what the contracts' rules say it must net."""

    sampled: int = 0
    claimed: int = 0
    claimed_cheats: int = 0
    collected: int = 0
    forfeited: int = 0
    disputes_won: int = 0
    forfeits_won: int = 0
    expected_net: int = 0
    claims: list[int] = field(default_factory=list)


@pytest.fixture
def canary_model(
    spotcheck: Any, register_model: Callable[..., bytes], deployer: Any, project: Any
) -> bytes:
    """``CANARY_MODEL`` on its own MockVerifier (a verifier serves one model), paid checks on."""
    verifier = deployer.deploy(project.MockVerifier)
    model = register_model(verifier, CANARY_MODEL, tag=b"canary")
    spotcheck.contracts.check_pool.setModelTerms(model, SHARE_BPS, SAMPLING_BPS, sender=deployer)
    return model


@pytest.fixture
def lazy(accounts: Any, spotcheck: Any, deployer: Any) -> Any:
    """A funded account with the pool approved (the lazy claimant)."""
    who = accounts[6]
    spotcheck.token.mint(who, FUNDING, sender=deployer)
    spotcheck.token.approve(spotcheck.contracts.check_pool, MAX_UINT, sender=who)
    return who


@pytest.fixture
def diligent(challenger: Any, spotcheck: Any) -> Any:
    """The fixtures' challenger (funded, DisputeManager approved), with the pool approved."""
    spotcheck.token.approve(spotcheck.contracts.check_pool, MAX_UINT, sender=challenger)
    return challenger


@pytest.fixture
def operator(accounts: Any, spotcheck: Any, deployer: Any) -> Any:
    """The canary operator's second address: funded, DisputeManager approved."""
    who = accounts[7]
    spotcheck.token.mint(who, FUNDING, sender=deployer)
    spotcheck.token.approve(spotcheck.dispute_manager, MAX_UINT, sender=who)
    return who


def test_canaryRun_lazyClaimantLosesMoney_diligentChallengerEarns(
    spotcheck: Any,
    canary_model: bytes,
    make_job: Callable[..., int],
    diligent: Any,
    lazy: Any,
    operator: Any,
    outsider: Any,
    chain: Any,
) -> None:
    jm, dm, token = spotcheck.job_manager, spotcheck.dispute_manager, spotcheck.token
    pool = spotcheck.contracts.check_pool
    start_balance = {who: int(token.balanceOf(who)) for who in (diligent, lazy)}

    # ---- the canary commits its jobs; the seeds become public one block after each commit
    first_block = chain.blocks.height + 1
    jobs = [
        make_job(input=_input(i), output=_canary_output(i), fee=FEE, model_id=canary_model)
        for i in range(N_JOBS)
    ]
    cheats = {j for i, j in enumerate(jobs) if _is_cheat(i)}
    inputs = {j: _input(i) for i, j in enumerate(jobs)}
    chain.mine(1)
    seeds = {j: _seed(chain, jm, j) for j in jobs}
    # what every challenger reads: the committed outputs, from the chain's events
    published = {
        int(log.jobId): [int(v) for v in log.output]
        for log in jm.ResultCommitted.range(first_block, chain.blocks.height + 1)
    }
    assert set(published) == set(jobs)

    d_key, d_sample = _first_key_sampling(DILIGENT_SECRET, seeds, cheats)
    z_key, z_sample = _first_key_sampling(LAZY_SECRET, seeds, cheats)
    cp.register(pool, d_key, BOND, sender=diligent)
    cp.register(pool, z_key, BOND, sender=lazy)
    d, z = Tally(sampled=len(d_sample)), Tally(sampled=len(z_sample))

    # ---- claims first: the lazy one claims everything it sampled ...
    z.claims = sorted(z_sample)
    _claim_in_batches(pool, [z_sample[j] for j in z.claims], sender=lazy)
    # ... the diligent one re-runs each sampled job, claims the correct ones, disputes the rest
    wrong = sorted(j for j in d_sample if not _within_tau(published[j], _rerun(inputs[j])))
    d.claims = sorted(set(d_sample) - set(wrong))
    _claim_in_batches(pool, [d_sample[j] for j in d.claims], sender=diligent)
    assert set(wrong) == cheats & d_sample.keys()  # the re-run finds exactly the canary's cheats
    for j in wrong:
        dm.openDispute(j, jm.getJob(j).outputHash, sender=diligent)
    # the operator disputes every cheat nobody else did
    for j in sorted(cheats - set(wrong)):
        dm.openDispute(j, jm.getJob(j).outputHash, sender=operator)
    for j in jobs:
        assert jm.getJob(j).status == (JobStatus.DISPUTED if j in cheats else JobStatus.COMMITTED)

    # ---- after the windows: disputes settled, jobs finalized
    refs = {j: onchain_job_key(j) for j in jobs}
    last = max(
        [int(dm.getDispute(refs[j]).proofDeadline) for j in cheats]
        + [int(jm.getJob(j).challengeDeadline) for j in jobs]
    )
    advance(chain, last - chain.pending_timestamp + 1)
    for j in sorted(cheats):
        dm.settle(refs[j], sender=outsider)
    for j in jobs:
        if j not in cheats:
            jm.finalize(j, sender=outsider)
        assert jm.getJob(j).status == (JobStatus.INVALID if j in cheats else JobStatus.FINAL)

    # ---- payouts: collect every final claim, forfeit every claim on an invalid job
    reward = FEE * SHARE_BPS // 10_000
    claimants = {j: sum(j in t.claims for t in (d, z)) for j in jobs}
    bounty = CANARY_MODEL.slash_amount * CANARY_MODEL.bounty_bps // 10_000
    for who, t in ((diligent, d), (lazy, z)):
        t.claimed = len(t.claims)
        for j in t.claims:
            if j in cheats:
                t.claimed_cheats += 1
                cp.forfeit(pool, j, str(who), sender=outsider)
                assert cp.claim_status(pool, j, str(who)) == ClaimStatus.FORFEITED
                t.forfeited += 1
                t.expected_net -= COLLATERAL  # burned: nobody's income
            else:
                cp.collect(pool, j, sender=who)
                assert cp.claim_status(pool, j, str(who)) == ClaimStatus.COLLECTED
                t.collected += 1
                # reward is even: a shared one splits with no dust
                t.expected_net += reward // claimants[j]
    d.disputes_won = len(wrong)
    d.expected_net += d.disputes_won * bounty  # the bond comes back with the bounty
    assert z.claimed_cheats >= 1, "the lazy key was chosen to meet at least one canary"
    assert d.claimed_cheats == 0 and d.forfeited == 0

    # forfeits are burned: the pool holds no one's winnings, only bonds and unpaid rewards
    for who in (diligent, operator):
        if int(dm.credits(who)) > 0:
            dm.withdrawCredits(sender=who)
    assert int(dm.credits(lazy)) == 0

    # ---- both leave: exit, wait, withdraw what is left of the bonds
    for who in (diligent, lazy):
        assert int(pool.getChallenger(who).openClaims) == 0
        pool.requestExit(sender=who)
    advance(chain, TEST_PARAMS.check_exit_delay)
    for who in (diligent, lazy):
        pool.withdrawBond(sender=who)
    net_d = int(token.balanceOf(diligent)) - start_balance[diligent]
    net_z = int(token.balanceOf(lazy)) - start_balance[lazy]

    # the model, same terms; no re-run cost and no gas (the token nets hold neither)
    game = check_game(
        CheckTerms(
            fee=FEE / TOKEN,
            check_share=SHARE_BPS / 10_000,
            claim_collateral=COLLATERAL / TOKEN,
            rerun_cost=0.0,
            tx_gas=0.0,
            slash=CANARY_MODEL.slash_amount / TOKEN,
            bounty_share=CANARY_MODEL.bounty_bps / 10_000,
            sampling=SAMPLING_BPS / 10_000,
            canary_rate=1 / CHEAT_EVERY,
            diligent=1,
            lazy=1,
        )
    )
    report = (
        f"canary run: {N_JOBS} jobs, {len(cheats)} cheats, p = {SAMPLING_BPS / 100:g} %, "
        f"fee {FEE / TOKEN:g}, check share {SHARE_BPS / 100:g} %, collateral "
        f"{COLLATERAL / TOKEN:g}, bounty {bounty / TOKEN:g}\n"
        f"  diligent (secret {d_key.secret:#x}): sampled {d.sampled}, claimed {d.claimed}, "
        f"collected {d.collected}, forfeited {d.forfeited}, disputes won {d.disputes_won}, "
        f"lazy forfeits won {d.forfeits_won}: net {net_d / TOKEN:+.4f} tokens; model "
        f"{game.diligent:+.4f}/sampled job x {d.sampled} = {game.diligent * d.sampled:+.4f}\n"
        f"  lazy     (secret {z_key.secret:#x}): sampled {z.sampled}, claimed {z.claimed}, "
        f"collected {z.collected}, forfeited {z.forfeited} (cheats claimed "
        f"{z.claimed_cheats}): net {net_z / TOKEN:+.4f} tokens; model "
        f"{game.lazy:+.4f}/sampled job x {z.sampled} = {game.lazy * z.sampled:+.4f}"
    )
    print(report)
    # the contracts paid exactly what their rules say, to the base unit
    assert net_d == d.expected_net, report
    assert net_z == z.expected_net, report
    assert game.lazy < 0 < game.diligent, report  # the terms make the game visible
    assert net_z < 0 < net_d, report


def test_lazyClaim_afterTheJobWasDisputed_reverts_NotClaimable_andAFinalJobCannotBeForfeited(
    spotcheck: Any,
    canary_model: bytes,
    make_job: Callable[..., int],
    lazy: Any,
    operator: Any,
    outsider: Any,
    chain: Any,
    deployer: Any,
) -> None:
    jm, dm = spotcheck.job_manager, spotcheck.dispute_manager
    pool = spotcheck.contracts.check_pool
    # every job sampled: the refusals below are about the job's state, not the sample
    pool.setModelTerms(canary_model, SHARE_BPS, 10_000, sender=deployer)
    key = vrf.keypair(LAZY_SECRET)
    cp.register(pool, key, BOND, sender=lazy)
    cheat_i, honest_i = CHEAT_EVERY - 1, 0
    bad = make_job(
        input=_input(cheat_i), output=_canary_output(cheat_i), fee=FEE, model_id=canary_model
    )
    good = make_job(
        input=_input(honest_i), output=_canary_output(honest_i), fee=FEE, model_id=canary_model
    )
    chain.mine(1)
    proofs = {
        j: list(vrf.prove(key.secret, _seed(chain, jm, j), onchain_job_key(j)).words())
        for j in (bad, good)
    }

    dm.openDispute(bad, jm.getJob(bad).outputHash, sender=operator)
    free = int(pool.freeBond(lazy))
    with ape.reverts(pool.NotClaimable, jobId=bad, status=JobStatus.DISPUTED):
        pool.claim(bad, proofs[bad], sender=lazy)
    with ape.reverts(pool.NotClaimable, jobId=bad, status=JobStatus.DISPUTED):
        pool.claimBatch([good, bad], [proofs[good], proofs[bad]], sender=lazy)
    assert int(pool.freeBond(lazy)) == free
    assert cp.claim_status(pool, bad, str(lazy)) == ClaimStatus.NONE
    assert cp.claim_status(pool, good, str(lazy)) == ClaimStatus.NONE  # the batch reverted whole

    pool.claim(good, proofs[good], sender=lazy)
    last = max(
        int(dm.getDispute(onchain_job_key(bad)).proofDeadline),
        int(jm.getJob(good).challengeDeadline),
    )
    advance(chain, last - chain.pending_timestamp + 1)
    jm.finalize(good, sender=outsider)
    dm.settle(onchain_job_key(bad), sender=outsider)
    with ape.reverts(pool.JobNotInvalid, jobId=good, status=JobStatus.FINAL):
        pool.forfeit(good, lazy, sender=outsider)
    # the refused claim locked nothing, so the invalid job has nothing to forfeit
    with ape.reverts(pool.NoOpenClaim, jobId=bad, claimant=lazy):
        pool.forfeit(bad, lazy, sender=outsider)
    before = int(spotcheck.token.balanceOf(lazy))
    cp.collect(pool, good, sender=lazy)
    assert int(spotcheck.token.balanceOf(lazy)) == before + FEE * SHARE_BPS // 10_000
    assert int(pool.getChallenger(lazy).bond) == BOND


#: Claimants on one correct job that make leaving it undefended pay its node's operator:
#: n x claimCollateral > slashAmount x (1 - bounty share): 8 x 10 > 100 x 0.75.
HONEST_CLAIMANTS = 8


def _correct_job_claimed_by_many(
    spotcheck: Any,
    canary_model: bytes,
    make_job: Callable[..., int],
    accounts: Any,
    chain: Any,
    deployer: Any,
    n: int,
) -> tuple[int, list[Any]]:
    """A correct job of the canary's model that ``n`` fresh registered challengers re-ran
    (found within tau) and claimed."""
    jm, token = spotcheck.job_manager, spotcheck.token
    pool = spotcheck.contracts.check_pool
    pool.setModelTerms(canary_model, SHARE_BPS, 10_000, sender=deployer)  # everyone samples it
    keys = [vrf.keypair(0xC0FFEE + i) for i in range(n)]
    honest = []
    for key in keys:
        who = accounts.generate_test_account()
        chain.set_balance(who.address, 10**20)
        token.mint(who, BOND, sender=deployer)
        token.approve(pool, MAX_UINT, sender=who)
        cp.register(pool, key, BOND, sender=who)
        honest.append(who)
    job = make_job(input=_input(0), output=_canary_output(0), fee=FEE, model_id=canary_model)
    chain.mine(1)
    seed = _seed(chain, jm, job)
    [log] = jm.ResultCommitted.range(int(jm.getJob(job).commitBlock), chain.blocks.height + 1)
    assert _within_tau([int(v) for v in log.output], _rerun(_input(0)))  # a correct output
    for who, key in zip(honest, keys, strict=True):
        cp.claim(pool, cp.Claim(job, vrf.prove(key.secret, seed, onchain_job_key(job))), who)
    return job, honest


def _undefended_self_dispute(
    spotcheck: Any,
    canary_model: bytes,
    make_job: Callable[..., int],
    accounts: Any,
    node: Any,
    operator: Any,
    outsider: Any,
    chain: Any,
    deployer: Any,
) -> tuple[list[int], int, int]:
    """HONEST_CLAIMANTS challengers re-run a correct job and claim it; the node's operator
    disputes it from a second address and nobody defends it. Returns each claimant's loss, the
    operator's net (node + second address: tokens in minus the slash) and the slash."""
    jm, dm, token = spotcheck.job_manager, spotcheck.dispute_manager, spotcheck.token
    pool = spotcheck.contracts.check_pool
    job, honest = _correct_job_claimed_by_many(
        spotcheck, canary_model, make_job, accounts, chain, deployer, HONEST_CLAIMANTS
    )
    stake0 = int(spotcheck.stake_manager.stakeOf(node).amount)
    op0 = int(token.balanceOf(operator))
    dm.openDispute(job, jm.getJob(job).outputHash, sender=operator)
    deadline = int(dm.getDispute(onchain_job_key(job)).proofDeadline)
    advance(chain, deadline - chain.pending_timestamp + 1)
    dm.settle(onchain_job_key(job), sender=outsider)
    assert jm.getJob(job).status == JobStatus.INVALID
    for who in honest:
        cp.forfeit(pool, job, str(who), sender=outsider)  # anyone may: nothing refuses it
    dm.withdrawCredits(sender=operator)
    slashed = stake0 - int(spotcheck.stake_manager.stakeOf(node).amount)
    operator_net = int(token.balanceOf(operator)) - op0 - slashed
    return [BOND - int(pool.getChallenger(who).bond) for who in honest], operator_net, slashed


def test_contract_nodeLeavesACorrectJobUndefended_andNobodyDefends_everyClaimForfeits(
    spotcheck: Any,
    canary_model: bytes,
    make_job: Callable[..., int],
    accounts: Any,
    node: Any,
    operator: Any,
    outsider: Any,
    chain: Any,
    deployer: Any,
) -> None:
    """A4-1, the contract's rule (documented in docs/security.md): CheckPool.forfeit takes the
    collateral of every open claim on an Invalid job, also of challengers whose re-run found the
    output correct, when NOBODY defends it. The protection is the claimants' own defence
    (``defend`` is open to anyone): the challenger service proves and defends the jobs it
    claimed (``challenger.defence``; tests/integration/test_challenger_defence.py, and the
    contract side below: test_honestClaimant_provesTheUndefendedCorrectJobItself_...)."""
    lost, operator_net, slashed = _undefended_self_dispute(
        spotcheck, canary_model, make_job, accounts, node, operator, outsider, chain, deployer
    )
    assert lost == [COLLATERAL] * HONEST_CLAIMANTS, (
        f"{HONEST_CLAIMANTS} claimants of an undefended job: each lost {lost} "
        f"(operator netted {operator_net / TOKEN:+g}, slashed {slashed / TOKEN:g})"
    )


def test_attack_nodeLeavesACorrectJobUndefended_operatorCannotProfit(
    spotcheck: Any,
    canary_model: bytes,
    make_job: Callable[..., int],
    accounts: Any,
    node: Any,
    operator: Any,
    outsider: Any,
    chain: Any,
    deployer: Any,
) -> None:
    """The same grief: forfeits are credited to the disputer only up to the part of the slash
    that was burned, so node + second address net at most 0 before gas (and the job's fee went
    back to the requester). It netted +5 tokens before the cap (8 x 10 collateral > 75)."""
    assert HONEST_CLAIMANTS * COLLATERAL > SLASH_BURNED  # the claims exceed the cap
    lost, operator_net, slashed = _undefended_self_dispute(
        spotcheck, canary_model, make_job, accounts, node, operator, outsider, chain, deployer
    )
    assert lost == [COLLATERAL] * HONEST_CLAIMANTS
    assert operator_net <= 0, (
        f"the operator netted {operator_net / TOKEN:+g} tokens (slashed {slashed / TOKEN:g})"
    )


def test_honestClaimant_provesTheUndefendedCorrectJobItself_keepsItsCollateralAndIsPaid(
    spotcheck: Any,
    canary_model: bytes,
    make_job: Callable[..., int],
    accounts: Any,
    operator: Any,
    outsider: Any,
    chain: Any,
    deployer: Any,
) -> None:
    """The defence the attack above leaves: a claimant sends the proof itself (``defend`` is
    open to anyone). With the MockVerifier the proof is free; with a real circuit it costs
    the claimant a proof inside the proof window."""
    jm, dm, token = spotcheck.job_manager, spotcheck.dispute_manager, spotcheck.token
    pool = spotcheck.contracts.check_pool
    job, honest = _correct_job_claimed_by_many(
        spotcheck, canary_model, make_job, accounts, chain, deployer, 2
    )
    dm.openDispute(job, jm.getJob(job).outputHash, sender=operator)
    proven = _rerun(_input(0))
    dm.defend(
        onchain_job_key(job),
        b"proof",
        defence_instances(_input(0), proven),
        _canary_output(0),
        sender=honest[0],
    )
    assert jm.getJob(job).status == JobStatus.FINAL  # a proven job is final at once
    with ape.reverts(pool.JobNotInvalid, jobId=job, status=JobStatus.FINAL):
        pool.forfeit(job, honest[1], sender=outsider)
    reward = FEE * SHARE_BPS // 10_000
    for who in honest:
        before = int(token.balanceOf(who))
        cp.collect(pool, job, sender=who)
        assert int(token.balanceOf(who)) == before + reward // 2
        assert int(pool.getChallenger(who).bond) == BOND
