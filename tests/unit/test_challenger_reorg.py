"""The challenger after a reorg below the confirmation depth (audit A4-8): what
``Store.forget_after`` forgets (unacted rows, recorded again by the replay) and keeps (rows
acted on, marked), and that a claim whose job moved is never sent with its stale proof. The
follower's replay itself: ``tests/unit/test_audit4_challenger_reorg.py``."""

from __future__ import annotations

from pathlib import Path

from challenger.chain_io import JobView
from challenger.store import BatchState, ClaimState, JobState, LeafRequestState, Store
from spotcheck.chain import ClaimStatus, JobStatus
from spotcheck.encoding import onchain_job_key, output_hash
from spotcheck.follower import open_db
from tests.unit.test_challenger_claims import (
    DEADLINE,
    MODEL,
    FakePool,
    _claimer,
    _matched,
    _states,
)

FORK = 85


def _counter(store: Store, name: str) -> int:
    row = store.conn.execute("SELECT value FROM ch_counters WHERE name = ?", (name,)).fetchone()
    return 0 if row is None else int(row[0])


def _request_block(store: Store, job_id: int) -> int | None:
    row = store.conn.execute(
        "SELECT block FROM ch_requests WHERE job_id = ?", (str(job_id),)
    ).fetchone()
    return None if row is None else int(row[0])


def test_forgetAfter_deletesUnactedJobsAndTheirUnsentClaims_keepsOlderOnes(
    tmp_path: Path,
) -> None:
    pool = FakePool(bond=0)  # no room: claims stay planned (not sent)
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 1, commit_block=80)  # before the fork: untouched
    _matched(c.store, pool, 2, commit_block=90)  # after the fork, claim only planned
    c.step()
    assert _states(c) == {1: ClaimState.PLANNED, 2: ClaimState.PLANNED}
    seen = _counter(c.store, "jobs_seen")
    with c.store.transaction() as conn:
        done = Store.forget_after(conn, FORK)
    assert (done.jobs, done.kept_jobs) == (1, 0)
    assert c.store.job(onchain_job_key(2)) is None
    assert _states(c) == {1: ClaimState.PLANNED}
    assert c.store.job(onchain_job_key(1)) is not None
    assert _counter(c.store, "jobs_seen") == seen - 1  # the replay counts it again


def test_forgetAfter_requestsAfterTheFork_areRecordedAgainByTheReplay(tmp_path: Path) -> None:
    store = Store(open_db(tmp_path / "c.sqlite"))
    Store.record_request(store.conn, 7, MODEL, [1, 2], 80)
    Store.record_request(store.conn, 8, MODEL, [3, 4], 90)
    with store.transaction() as conn:
        assert Store.forget_after(conn, FORK).requests == 1
    assert (_request_block(store, 7), store.request_input(8)) == (80, None)
    # The replay's JobRequested for job 8 (now another input, in block 95) is recorded.
    Store.record_request(store.conn, 8, MODEL, [5, 6], 95)
    assert (store.request_input(8), _request_block(store, 8)) == ([5, 6], 95)


def test_forgetAfter_keepsAndMarksAJobWithASentClaim_whichIsNeverResent(tmp_path: Path) -> None:
    pool = FakePool()
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 3, commit_block=90)
    claim_key = onchain_job_key(3)
    c.step()
    assert _states(c)[3] is ClaimState.OPEN
    # The claim was being sent (a restart between send and receipt) when a reorg replaced
    # the job's block: its transaction is not on chain any more.
    pool.status.pop(3)
    c.store.conn.execute("UPDATE ch_claims SET state = 'sending', sent_block = 100")
    with c.store.transaction() as conn:
        done = Store.forget_after(conn, FORK)
    assert (done.jobs, done.kept_jobs) == (0, 1)
    assert c.claims.seed_of(claim_key) == (90, FORK)
    # The node's commit is re-mined in block 95: same job id, another seed.
    pool.jobs[3] = JobView(
        3, JobStatus.COMMITTED, MODEL, "0xnode", output_hash([3]), DEADLINE, 95
    )  # fmt: skip
    pool.height = 200  # past resend_after_blocks: the claim is planned again...
    sends = len(pool.sends)
    c.step()
    c.step()
    # ...and then given up, never sent with the proof of the replaced seed.
    assert len(pool.sends) == sends
    row = next(r for r in c.claims.claims(*ClaimState) if r.job_id == 3)
    assert row.state is ClaimState.MISSED and "reorg" in (row.reason or "")


def test_claim_jobMovedOnChain_isNotSentWithItsStaleProof(tmp_path: Path) -> None:
    """A planned claim whose job the chain now has in another block (the follower has not
    replayed it yet) is not sent: the proof is for the old block's seed."""
    pool = FakePool()
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 4, commit_block=90)
    pool.jobs[4] = JobView(
        4, JobStatus.COMMITTED, MODEL, "0xnode", output_hash([3]), DEADLINE, 95
    )  # fmt: skip
    c.step()
    assert pool.sends == []
    row = next(r for r in c.claims.claims(*ClaimState) if r.job_id == 4)
    assert row.state is ClaimState.MISSED and "moved from block 90 to 95" in (row.reason or "")
    assert pool.status.get(4, ClaimStatus.NONE) is ClaimStatus.NONE


def test_forgetAfter_keepsJobsWithADisputeSent(tmp_path: Path) -> None:
    pool = FakePool()
    c = _claimer(tmp_path, pool)
    _matched(c.store, pool, 5, commit_block=90)
    c.store.conn.execute(
        "UPDATE ch_jobs SET state = ?, tx_hash = '0xab' WHERE job_id = '5'",
        (JobState.DISPUTE_SENT.value,),
    )
    with c.store.transaction() as conn:
        done = Store.forget_after(conn, FORK)
    job = c.store.job(onchain_job_key(5))
    assert done.kept_jobs == 1 and job is not None and job.state is JobState.DISPUTE_SENT


def test_forgetAfter_unfetchedBatchGoes_batchWithALeafRequestSentStays(tmp_path: Path) -> None:
    store = Store(open_db(tmp_path / "c.sqlite"))
    for bid in (1, 2, 3):
        Store.record_batch(
            store.conn, batch_id=bid, model_id=MODEL, node="0xnode", root=b"\x01" * 32,
            count=4, uri="http://n", challenge_deadline=DEADLINE, commit_block=80 + 5 * bid,
        )  # fmt: skip
    # Batch 3 (block 95) has a leaf request sent; batch 2 (block 90) only a planned one.
    for bid, state in ((2, LeafRequestState.PLANNED), (3, LeafRequestState.SENT)):
        store.conn.execute(
            "INSERT INTO ch_leaf_requests(request_id, batch_id, leaf_index, model_id, node, "
            "challenge_deadline, state, updated_at) VALUES (?, ?, 0, ?, '0xnode', ?, ?, 0)",
            (bytes([bid]) * 32, str(bid), MODEL, DEADLINE, state.value),
        )
    seen = _counter(store, "jobs_seen")
    with store.transaction() as conn:
        done = Store.forget_after(conn, FORK)
    assert (done.batches, done.kept_batches) == (1, 1)
    assert store.batch(1) is not None and store.batch(2) is None
    kept = store.batch(3)
    assert kept is not None and kept.state is BatchState.SEEN
    left = store.conn.execute("SELECT batch_id FROM ch_leaf_requests").fetchall()
    assert [r[0] for r in left] == ["3"]
    assert _counter(store, "jobs_seen") == seen - 4 and _counter(store, "batches_seen") == 2
