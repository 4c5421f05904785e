"""Audit 6, A6-1 on on-chain jobs: the claim window is the dispute window, so a lazy claim
sent in the window's last second cannot be followed by the canary's dispute (the leaf variant:
test_audit6_leaf_checks.py). Set-up reused from test_check_pool.py."""

from __future__ import annotations

from typing import Any

import ape
import pytest

from spotcheck.chain import DeployParams
from spotcheck.encoding import onchain_job_key
from spotcheck.errors import ConfigError
from tests.fixtures.chain import MOCK_MODEL, advance
from tests.integration.test_check_pool import (  # noqa: F401  (fixtures: noqa F811)
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


def test_audit6_lazyJobClaimInTheWindowsLastSecond_canaryCanStillDisputeIt(
    spotcheck: Any,
    pool: Any,  # noqa: F811
    registered: tuple[Any, Any],  # noqa: F811
    committed: tuple[int, bytes],  # noqa: F811
    challenger: Any,
    outsider: Any,
    chain: Any,
) -> None:
    """The job is a canary (wrong on purpose; its operator disputes from ``challenger``). The
    lazy claimant claims it unchecked in the last second of the claim window, having seen no
    dispute; the operator's dispute lands in the next block (a later timestamp on a real
    chain). Safe: claims close ``claimMargin`` before disputes (fixed), so the dispute is
    still accepted and the lazy collateral burns; a claim one second later is refused."""
    a, b = registered
    job_id, seed = committed
    deadline = int(spotcheck.job_manager.getJob(job_id).challengeDeadline)
    claim_deadline = deadline - int(pool.claimMargin())
    assert claim_deadline < deadline
    chain.pending_timestamp = claim_deadline  # the claim window's last second
    pool.claim(job_id, _proof(KEY_A, seed, job_id), sender=a)
    chain.pending_timestamp = claim_deadline + 1
    with ape.reverts(pool.ClaimWindowClosed):
        pool.claim(job_id, _proof(KEY_B, seed, job_id), sender=b)
    chain.pending_timestamp = claim_deadline + 2
    spotcheck.dispute_manager.openDispute(job_id, OUT_HASH, sender=challenger)
    advance(chain, MOCK_MODEL.proof_window + 1)
    spotcheck.dispute_manager.settle(onchain_job_key(job_id), sender=outsider)
    pool.forfeit(job_id, a, sender=outsider)
    assert int(pool.getChallenger(a).bond) == MIN_BOND - COLLATERAL


def test_audit6_claimMarginZero_refusedAtDeploy_andInDeployParams(
    project: Any, deployer: Any, spotcheck: Any
) -> None:
    """A zero margin would bring A6-1 back (a claim in the dispute window's last second)."""
    with ape.reverts():
        deployer.deploy(project.CheckPool, spotcheck.job_manager, MIN_BOND, COLLATERAL, 10, 0)
    with pytest.raises(ConfigError, match="check_claim_margin must be > 0"):
        DeployParams(check_claim_margin=0)
    fresh = deployer.deploy(project.CheckPool, spotcheck.job_manager, MIN_BOND, COLLATERAL, 10, 7)
    assert int(fresh.claimMargin()) == 7
