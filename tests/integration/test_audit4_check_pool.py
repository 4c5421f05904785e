"""Audit 4 (CheckPool, paid checks): attacks on promises (3) and (4) and on registration.

Each test asserts the SAFE behaviour; the ones still open are marked xfail(strict=True) with
their reason. A4-1 (an undefended correct job forfeits its claims) is the contract's rule,
asserted as such; it is closed by the claimants' own defence (``challenger.defence``). Set-up
reused from test_check_pool.py."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from spotcheck import check_pool as cp
from spotcheck.chain import ClaimStatus
from spotcheck.encoding import onchain_job_key
from tests.fixtures.chain import JOB_INPUT, JOB_OUTPUT, MOCK_MODEL, advance, defence_instances
from tests.integration.test_check_pool import (  # noqa: F401  (fixtures; params: noqa F811)
    COLLATERAL,
    KEY_A,
    KEY_B,
    MIN_BOND,
    OUT_HASH,
    _proof,
    claimers,
    committed,
    pool,
    registered,
)

pytestmark = pytest.mark.chain


def test_audit4_honestClaimant_correctJob_nodeSybilDisputes_nobodyDefends_claimsForfeited(
    pool: Any,  # noqa: F811
    registered: tuple[Any, Any],  # noqa: F811
    committed: tuple[int, bytes],  # noqa: F811
    spotcheck: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """A4-1, the contract's rule: a node's second address disputes the node's own CORRECT job
    after honest challengers claimed it; nobody defends; settle marks it Invalid and forfeit
    burns every claimant's collateral. Closed in the challenger service, which defends the jobs
    it claimed (``challenger.defence``; the next test is that defence on the contract)."""
    a, b = registered
    job_id, seed = committed
    pool.claim(job_id, _proof(KEY_A, seed, job_id), sender=a)
    pool.claim(job_id, _proof(KEY_B, seed, job_id), sender=b)
    dm = spotcheck.dispute_manager
    dm.openDispute(job_id, OUT_HASH, sender=challenger)  # the node's second address
    advance(chain, MOCK_MODEL.proof_window + 1)
    dm.settle(onchain_job_key(job_id), sender=outsider)
    for claimant in (a, b):
        pool.forfeit(job_id, claimant, sender=challenger)
    lost = [MIN_BOND - int(pool.getChallenger(x).bond) for x in (a, b)]
    assert lost == [COLLATERAL, COLLATERAL]


def test_audit4_honestClaimant_correctJob_nodeSybilDisputes_claimantDefends_keepsCollateral(
    pool: Any,  # noqa: F811
    registered: tuple[Any, Any],  # noqa: F811
    committed: tuple[int, bytes],  # noqa: F811
    spotcheck: Any,
    challenger: Any,
    mock_verifier: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """The defence: one claimant proves the job itself before the proof deadline (``defend``
    is open to anyone; MockVerifier in Accept mode stands for its valid proof). The job is
    final, nothing can be forfeited, both claimants keep their collateral."""
    a, b = registered
    job_id, seed = committed  # JOB_OUTPUT is the node's honest answer
    pool.claim(job_id, _proof(KEY_A, seed, job_id), sender=a)
    pool.claim(job_id, _proof(KEY_B, seed, job_id), sender=b)
    dm = spotcheck.dispute_manager
    dm.openDispute(job_id, OUT_HASH, sender=challenger)  # the node's second address
    advance(chain, MOCK_MODEL.proof_window - 5)  # the node stayed silent until now
    dm.defend(
        onchain_job_key(job_id),
        b"proof",
        defence_instances(JOB_INPUT, JOB_OUTPUT),
        JOB_OUTPUT,
        sender=a,
    )
    advance(chain, 10)
    with ape.reverts():
        dm.settle(onchain_job_key(job_id), sender=outsider)
    for claimant in (a, b):
        with ape.reverts():
            pool.forfeit(job_id, claimant, sender=challenger)
    lost = [MIN_BOND - int(pool.getChallenger(x).bond) for x in (a, b)]
    assert lost == [0, 0], f"honest claimants lost {lost} (claimCollateral {COLLATERAL} each)"


def test_audit4_lazyClaimant_frontRunsTheDispute_stillLosesItsCollateral(
    pool: Any,  # noqa: F811
    registered: tuple[Any, Any],  # noqa: F811
    committed: tuple[int, bytes],  # noqa: F811
    spotcheck: Any,
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    lazy, _ = registered
    job_id, seed = committed  # in this test the committed output is WRONG (nobody can prove it)
    pool.claim(job_id, _proof(KEY_A, seed, job_id), sender=lazy)  # blind claim
    dm = spotcheck.dispute_manager
    spotcheck.token.approve(dm, 2**256 - 1, sender=lazy)
    honest_disputer = challenger
    # The diligent challenger's openDispute sits in the mempool; the lazy claimant copies it
    # with a higher gas price and is mined first; the honest one reverts DisputeExists.
    dm.openDispute(job_id, OUT_HASH, sender=lazy)
    with ape.reverts(dm.DisputeExists):
        dm.openDispute(job_id, OUT_HASH, sender=honest_disputer)
    advance(chain, MOCK_MODEL.proof_window + 1)  # the cheating node cannot defend
    dm.settle(onchain_job_key(job_id), sender=outsider)
    pool.forfeit(job_id, lazy, sender=outsider)
    assert pool.claimOf(onchain_job_key(job_id), lazy) == ClaimStatus.FORFEITED
    # SAFE (promise 4): a lazy claim on a job that ends invalid costs its collateral (A4-2,
    # fixed: forfeits are burned, so winning the dispute does not win it back).
    assert int(pool.getChallenger(lazy).bond) == MIN_BOND - COLLATERAL


def test_audit4_registerFrontRun_keyAndPopReplayed_ownerCanStillRegister(
    pool: Any,  # noqa: F811
    claimers: tuple[Any, Any],  # noqa: F811
) -> None:
    """A4-3, fixed: the PoP is bound to the registrant, the pool and the chain, so the copy
    a squatter takes from the owner's pending register transaction is refused."""
    owner, squatter = claimers
    pk = list(KEY_A.public.words())
    pop = list(cp.possession(pool, KEY_A, owner.address).words())  # in owner's pending tx
    # The squatter copies both words from the owner's pending transaction and is mined first.
    with ape.reverts(pool.InvalidPossession):
        pool.register(pk, pop, MIN_BOND, sender=squatter)
    # SAFE: the owner (who knows the secret) registers its own key.
    pool.register(pk, pop, MIN_BOND, sender=owner)
    assert pool.getChallenger(owner).registered
