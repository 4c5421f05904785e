"""The claim state machine (``challenger.claims``) against an in-memory CheckPool: what is
claimed, when, how much at once, and what happens on each refusal (issue 15). The same
machine on anvil: ``tests/integration/test_challenger_claims.py``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from challenger.chain_io import JobView, PoolAccount
from challenger.claims import Claimer, ClaimOptions
from challenger.sampling import SamplingPolicy, proof_text
from challenger.store import ClaimState, JobState, Store
from spotcheck import vrf
from spotcheck.chain import ClaimStatus, JobStatus, TxResult
from spotcheck.encoding import onchain_job_key, output_hash
from spotcheck.errors import ChainError, RevertError
from spotcheck.follower import open_db

MODEL = b"\x42" * 32
SEED = b"\x13" * 32
POLICY = SamplingPolicy(secret=b"\x05" * 32, default_rate=1.0)
DEADLINE = 2000
COLLATERAL = 10


@dataclass
class FakePool:
    """CheckPool + JobManager reads as the claimer sees them."""

    me: str = "0x" + "cc" * 20
    now: int = 1000
    height: int = 100
    registered: bool = True
    exiting: bool = False
    bond: int = 10 * COLLATERAL
    bps: int = 10_000
    jobs: dict[int, JobView] = field(default_factory=dict)
    status: dict[int, ClaimStatus] = field(default_factory=dict)
    seeds_recorded: set[int] = field(default_factory=set)
    seed_sends: list[int] = field(default_factory=list)
    #: CheckPool.claimMargin (0: the claim window is the challenge window).
    margin: int = 0
    sends: list[list[int]] = field(default_factory=list)
    fail_with: BaseException | None = None
    collected: list[int] = field(default_factory=list)
    forfeits: list[int] = field(default_factory=list)

    def head(self) -> int:
        return self.height

    def timestamp(self) -> int:
        return self.now

    def job(self, job_id: int) -> JobView:
        return self.jobs[job_id]

    def pool_account(self) -> PoolAccount:
        open_claims = sum(1 for s in self.status.values() if s is ClaimStatus.OPEN)
        return PoolAccount(
            self.registered, self.exiting, self.bond - open_claims * COLLATERAL, COLLATERAL
        )

    def pool_sampling_bps(self, model_id: bytes) -> int:
        return self.bps

    def pool_claim_status(self, job_id: int) -> ClaimStatus:
        return self.status.get(job_id, ClaimStatus.NONE)

    def pool_seed_recorded(self, job_id: int) -> bool:
        return job_id in self.seeds_recorded

    def pool_claim_margin(self) -> int:
        return self.margin

    def pool_record_seed(self, job_id: int) -> TxResult:
        assert job_id not in self.seeds_recorded, "seed recorded twice"
        self.seed_sends.append(job_id)
        self.seeds_recorded.add(job_id)
        return TxResult("0x" + "5e" * 32, self.height)

    def pool_claim_batch(self, claims: Sequence[tuple[int, vrf.G1Point]]) -> TxResult:
        self.sends.append([j for j, _ in claims])
        if self.fail_with is not None:
            raise self.fail_with
        for j, proof in claims:
            assert proof == vrf.prove(POLICY.sk, SEED, onchain_job_key(j))
            assert self.status.get(j, ClaimStatus.NONE) is ClaimStatus.NONE, "claimed twice"
            self.status[j] = ClaimStatus.OPEN
        return TxResult(f"0x{len(self.sends):064x}", self.height)

    def pool_collect(self, job_id: int) -> tuple[TxResult, int]:
        self.collected.append(job_id)
        self.status[job_id] = ClaimStatus.COLLECTED
        return TxResult("0x" + "ee" * 32, self.height), 7

    def pool_collected(self, job_id: int, since_block: int) -> int | None:
        # The pool's RewardCollected log to us (None: no log seen, as ApeChain says it).
        return 7 if job_id in self.collected else None

    def pool_forfeit(self, job_id: int) -> TxResult:
        assert self.status.get(job_id) is ClaimStatus.OPEN, "forfeit of a claim not open"
        self.forfeits.append(job_id)
        self.status[job_id] = ClaimStatus.FORFEITED
        return TxResult("0x" + "ff" * 32, self.height)


def _matched(store: Store, pool: FakePool, job_id: int, commit_block: int = 90) -> None:
    """An on-chain job sampled (with its VRF proof) and found correct."""
    key = onchain_job_key(job_id)
    Store.record_request(store.conn, job_id, MODEL, [1, 2])
    Store.record_onchain_commit(
        store.conn, job_key=key, job_id=job_id, node="0xnode", output_q=[3],
        output_hash=output_hash([3]), challenge_deadline=DEADLINE, commit_block=commit_block,
    )  # fmt: skip
    proof = vrf.prove(POLICY.sk, SEED, key)
    store.transition(key, JobState.SAMPLED, vrf_proof=proof_text(proof))
    store.transition(key, JobState.MATCHED, witness_diff=0)  # judged by the circuit
    pool.jobs[job_id] = JobView(
        job_id, JobStatus.COMMITTED, MODEL, "0xnode", output_hash([3]), DEADLINE, commit_block
    )


def _claimer(tmp_path: Path, pool: FakePool, **opts: int) -> Claimer:
    store = Store(open_db(tmp_path / "c.sqlite"))
    return Claimer(store, pool, ClaimOptions(**{"max_wait_s": 0, **opts}))


def _states(c: Claimer) -> dict[int, ClaimState]:
    return {r.job_id: r.state for r in c.claims.claims(*ClaimState)}


def test_claims_goOutInBatchesOfBatchSize_eachJobOnce(tmp_path: Path) -> None:
    pool = FakePool()
    c = _claimer(tmp_path, pool, batch_size=2)
    for j in range(1, 6):
        _matched(c.store, pool, j)
    report = c.step()
    assert pool.sends == [[1, 2], [3, 4], [5]] and report.sent == 5
    c.step()
    assert len(pool.sends) == 3  # nothing sent again
    assert set(_states(c).values()) == {ClaimState.OPEN}


def test_claims_neverMoreThanTheFreeBondBacks(tmp_path: Path) -> None:
    pool = FakePool(bond=2 * COLLATERAL)
    c = _claimer(tmp_path, pool)
    for j in range(1, 6):
        _matched(c.store, pool, j)
    c.step()
    assert pool.sends == [[1, 2]]
    assert list(_states(c).values()).count(ClaimState.PLANNED) == 3


def test_claims_waitForAFullerBatch_untilMaxWaitOrTheDeadline(tmp_path: Path) -> None:
    pool = FakePool()
    c = _claimer(tmp_path, pool, batch_size=4, max_wait_s=60, margin_s=30)
    _matched(c.store, pool, 1)
    c.step()
    assert pool.sends == []  # one claim, fresh: waits for company
    pool.now += 60
    c.step()
    assert pool.sends == [[1]]


def test_notRegistered_sendsNothing_warnsOnce_thenMissedAfterTheWindow(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = FakePool(registered=False)
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 1)
    with caplog.at_level(logging.WARNING):
        c.step()
        c.step()
    assert pool.sends == []
    assert sum("not registered" in r.getMessage() for r in caplog.records) == 1
    pool.now = DEADLINE + 1
    c.step()
    [row] = c.claims.claims(ClaimState.MISSED)
    assert row.reason == "window closed while not registered"


def test_jobNoLongerCommitted_orSeedLost_isMissed_notSent(tmp_path: Path) -> None:
    pool = FakePool(height=500)
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 1, commit_block=450)
    _matched(c.store, pool, 2, commit_block=450)
    _matched(c.store, pool, 3, commit_block=100)  # seed block 101: unreadable at 500
    _matched(c.store, pool, 4, commit_block=100)
    pool.seeds_recorded.add(4)  # ... unless someone recorded it
    pool.jobs[2] = JobView(2, JobStatus.DISPUTED, MODEL, "0xnode", b"", DEADLINE, 450)
    c.step()
    assert pool.sends == [[1, 4]]
    reasons = {r.job_id: r.reason for r in c.claims.claims(ClaimState.MISSED)}
    assert reasons == {2: "job is disputed", 3: "seed unavailable (not recorded within 256 blocks)"}


def test_proofsRefusedOnChain_areMissed_loudly_neverRetried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pool = FakePool(fail_with=RevertError("InvalidBatchProof()", error="InvalidBatchProof"))
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 1)
    with caplog.at_level(logging.ERROR):
        c.step()
        c.step()
    assert pool.sends == [[1]]
    assert _states(c) == {1: ClaimState.MISSED}
    assert any("CLAIM REFUSED" in r.getMessage() for r in caplog.records)


@dataclass
class RefusingPool(FakePool):
    """claimBatch reverts NotSampled for the whole batch when it holds a refused job."""

    refuse: set[int] = field(default_factory=set)

    def pool_claim_batch(self, claims: Sequence[tuple[int, vrf.G1Point]]) -> TxResult:
        bad = [j for j, _ in claims if j in self.refuse]
        if bad:
            self.sends.append([j for j, _ in claims])
            raise RevertError(f"NotSampled(jobId={bad[0]})", error="NotSampled")
        return super().pool_claim_batch(claims)


def test_oneRefusedProof_costsOnlyItsOwnClaim_theOthersAreSentAlone(tmp_path: Path) -> None:
    """claimBatch reverts whole for one refused proof: its claims go out one by one, and only
    the refused one is missed (audit A4-6)."""
    pool = RefusingPool(refuse={2})
    c = _claimer(tmp_path, pool)
    for j in (1, 2, 3):
        _matched(c.store, pool, j)
    c.step()  # the batch reverts: back to planned, to be sent alone
    c.step()
    assert pool.sends[0] == [1, 2, 3] and sorted(pool.sends[1:]) == [[1], [2], [3]]
    assert _states(c) == {1: ClaimState.OPEN, 2: ClaimState.MISSED, 3: ClaimState.OPEN}


def test_rateLoweredAfterPlanning_claimIsUnclaimable_notSent(tmp_path: Path) -> None:
    pool = FakePool(bps=10_000)
    c = _claimer(tmp_path, pool, batch_size=4, max_wait_s=60)
    jobs = list(range(1, 11))
    for j in jobs:
        _matched(c.store, pool, j)
    c.step()  # 10 planned, a batch of 4 due... all sent while the rate is 100 %
    pool.sends.clear()
    pool.status.clear()
    for r in c.claims.claims(ClaimState.OPEN):
        c.claims.conn.execute(
            "UPDATE ch_claims SET state = 'planned' WHERE job_key = ?", (r.job_key,)
        )
    pool.bps = 5_000
    c.step()
    still = {
        j for j in jobs if vrf.sampled_bps(vrf.prove(POLICY.sk, SEED, onchain_job_key(j)), 5_000)
    }
    assert 0 < len(still) < len(jobs)
    assert {j for b in pool.sends for j in b} == still
    states = _states(c)
    assert {j for j in jobs if states[j] is ClaimState.UNCLAIMABLE} == set(jobs) - still


def test_transientSendFailure_isPlannedAgain_andSentOnce(tmp_path: Path) -> None:
    pool = FakePool(fail_with=ChainError("claimBatch failed: connection reset"))
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 1)
    c.step()
    assert _states(c) == {1: ClaimState.PLANNED}
    pool.fail_with = None
    c.step()
    assert pool.sends == [[1], [1]] and _states(c) == {1: ClaimState.OPEN}


def test_outsideThePoolsSample_orNoTerms_isUnclaimable(tmp_path: Path) -> None:
    pool = FakePool(bps=0)
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 1)
    c.step()
    assert _states(c) == {1: ClaimState.UNCLAIMABLE} and pool.sends == []
    pool2 = FakePool(bps=1)  # 0.01 %: the proofs of jobs 1..20 are all above the threshold
    c2 = _claimer(tmp_path / "b", pool2)
    for j in range(1, 21):
        _matched(c2.store, pool2, j)
    expected = {
        j
        for j in range(1, 21)
        if vrf.sampled_bps(vrf.prove(POLICY.sk, SEED, onchain_job_key(j)), 1)
    }
    c2.step()
    claimed = {j for batch in pool2.sends for j in batch}
    assert claimed == expected
    assert sum(s is ClaimState.UNCLAIMABLE for s in _states(c2).values()) == 20 - len(expected)


def test_openClaim_collectedWhenFinal_forfeitedWhenInvalid(tmp_path: Path) -> None:
    pool = FakePool()
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 1)
    _matched(c.store, pool, 2)
    c.step()
    pool.jobs[1] = JobView(1, JobStatus.FINAL, MODEL, "0xnode", b"", DEADLINE, 90)
    pool.jobs[2] = JobView(2, JobStatus.INVALID, MODEL, "0xnode", b"", DEADLINE, 90)
    report = c.step()
    assert report.paid == 1 and report.payouts == 7 and report.forfeited == 1
    assert _states(c) == {1: ClaimState.COLLECTED, 2: ClaimState.FORFEITED}
    # Closed on chain too (an open claim would keep the bond from leaving), once.
    assert pool.forfeits == [2]
    c.step()
    assert pool.forfeits == [2]
    summary = c.claims.summary()
    assert summary["payouts"] == 7 and summary["forfeits"] == COLLATERAL
    c.step()
    assert pool.collected == [1]  # collected once


def test_collectWhoseReceiptARestartLost_isAdoptedWithItsPayout_neverCollectedTwice(
    tmp_path: Path,
) -> None:
    pool = FakePool()
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 1)
    c.step()
    pool.jobs[1] = JobView(1, JobStatus.FINAL, MODEL, "0xnode", b"", DEADLINE, 90)
    pool.pool_collect(1)  # sent by the process that died before it recorded the receipt
    again = _claimer(tmp_path, pool)  # the restarted process, same state file
    report = again.step()
    assert pool.collected == [1]
    assert report.paid == 1 and report.payouts == 7
    assert _states(again) == {1: ClaimState.COLLECTED}
    assert again.claims.summary()["payouts"] == 7


def test_claimMargin_claimsCloseBeforeTheChallengeDeadline_missedClearly(tmp_path: Path) -> None:
    """A6-1: the pool refuses claims in the last ``claimMargin`` seconds of the window; the
    claimer sends before that (the margin read from the pool) and records a late one missed."""
    pool = FakePool(margin=50, now=DEADLINE - 80)
    c = _claimer(tmp_path, pool, max_wait_s=10**6, margin_s=30)
    _matched(c.store, pool, 1)
    c.step()  # DEADLINE - 50 - 30 <= now: due
    assert pool.sends == [[1]]
    _matched(c.store, pool, 2)
    pool.now = DEADLINE - 49  # inside the challenge window, past the claim window
    c.step()
    assert pool.sends == [[1]]
    [row] = c.claims.claims(ClaimState.MISSED)
    assert row.job_id == 2
    assert row.reason == "claim window closed at 1950 (challenge deadline 2000 - claim margin 50)"


def test_sampledJob_seedRecordedOnce_beforeItsCheckEnds(tmp_path: Path) -> None:
    """A6-8 for on-chain jobs: a job in our sample gets ``recordSeed`` once, early."""
    pool = FakePool(height=95)
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 1, commit_block=90)
    c.step()
    c.step()
    assert pool.seed_sends == [1]
