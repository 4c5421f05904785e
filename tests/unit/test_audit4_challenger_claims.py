"""Audit 4 (the challenger's paid-check claims): a stale sampling rate, and one refused proof
costs the whole batch.

FIXED since 1a2a066: the claimer reads each model's rate every step, and a batch refused for
one proof goes back to planned with each claim sent alone, so only the refused claim is given
up. The test asserts that safe behaviour (no xfail marker any more). In-memory CheckPool from
test_challenger_claims.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from challenger.store import ClaimState
from spotcheck import vrf
from spotcheck.chain import TxResult
from spotcheck.encoding import onchain_job_key
from spotcheck.errors import RevertError
from tests.unit.test_challenger_claims import (
    POLICY,
    SEED,
    FakePool,
    _claimer,
    _matched,
    _states,
)


@dataclass
class RatePool(FakePool):
    """CheckPool.claimBatch as the contract does it: the whole batch reverts NotSampled when
    one proof's output is not below the model's CURRENT samplingBps."""

    def pool_claim_batch(self, claims: Sequence[tuple[int, vrf.G1Point]]) -> TxResult:
        for j, proof in claims:
            if not vrf.sampled_bps(proof, self.bps):
                self.sends.append([j for j, _ in claims])
                raise RevertError(f"NotSampled(jobId={j}, output=0x..)", error="NotSampled")
        return super().pool_claim_batch(claims)


def test_audit4_rateLowered_staleRate_oneRefusedProof_othersStillClaimed(tmp_path: Path) -> None:
    pool = RatePool()
    c = _claimer(tmp_path, pool, batch_size=16)
    _matched(c.store, pool, 100)
    c.step()  # the claimer reads the rate (10,000 bps) once; job 100 is claimed
    assert _states(c)[100] is ClaimState.OPEN
    pool.bps = 5000  # the registrar halves the model's sampling rate (setModelTerms)
    jobs = list(range(1, 11))
    for j in jobs:
        _matched(c.store, pool, j)
    sampled = [
        j for j in jobs if vrf.sampled_bps(vrf.prove(POLICY.sk, SEED, onchain_job_key(j)), 5000)
    ]
    assert 0 < len(sampled) < len(jobs)
    for _ in range(3):
        c.step()
    states = _states(c)
    # SAFE: every checked job still in the pool's sample is claimed.
    assert all(states[j] is ClaimState.OPEN for j in sampled), (
        f"sends {pool.sends}; still sampled {sampled}; states {states}"
    )
