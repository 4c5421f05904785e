"""Audit 6, A6-1 on on-chain jobs: the claim window is the dispute window, so a lazy claim
sent in the window's last second cannot be followed by the canary's dispute (the leaf variant:
test_audit6_leaf_checks.py). Set-up reused from test_check_pool.py."""

from __future__ import annotations

from typing import Any

import pytest

from spotcheck.encoding import onchain_job_key
from tests.fixtures.chain import MOCK_MODEL, advance
from tests.integration.test_check_pool import (  # noqa: F401  (fixtures: noqa F811)
    COLLATERAL,
    KEY_A,
    MIN_BOND,
    OUT_HASH,
    _proof,
    claimers,
    committed,
    pool,
    registered,
)

pytestmark = pytest.mark.chain


@pytest.mark.xfail(
    strict=True,
    reason="A6-1: a lazy job claim in the window's last second cannot be disputed after it "
    "(claim window == dispute window): canaries never catch a last-second lazy claimant",
)
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
    lazy claimant claims it unchecked in the last second of the window, having seen no
    dispute; the operator's dispute lands in the next block (a later timestamp on a real
    chain). Safe: the dispute is still accepted and the lazy collateral burns."""
    a, _ = registered
    job_id, seed = committed
    deadline = int(spotcheck.job_manager.getJob(job_id).challengeDeadline)
    chain.pending_timestamp = deadline
    pool.claim(job_id, _proof(KEY_A, seed, job_id), sender=a)
    chain.pending_timestamp = deadline + 1
    spotcheck.dispute_manager.openDispute(job_id, OUT_HASH, sender=challenger)
    advance(chain, MOCK_MODEL.proof_window + 1)
    spotcheck.dispute_manager.settle(onchain_job_key(job_id), sender=outsider)
    pool.forfeit(job_id, a, sender=outsider)
    assert int(pool.getChallenger(a).bond) == MIN_BOND - COLLATERAL
