"""The challenger's state machine in SQLite: idempotent recording and transitions."""

from __future__ import annotations

from pathlib import Path

import pytest

from challenger.store import BatchState, JobState, Leaf, LeafRequestState, Store
from spotcheck.chain import JobKind
from spotcheck.encoding import batch_leaf_key, onchain_job_key, output_hash
from spotcheck.errors import StateError
from spotcheck.follower import open_db
from spotcheck.kit.db import IllegalTransition

MODEL = b"\x11" * 32


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(open_db(tmp_path / "ch.sqlite"))


def _commit(store: Store, job_id: int = 1) -> bytes:
    key = onchain_job_key(job_id)
    Store.record_request(store.conn, job_id, MODEL, [1, 2])
    assert Store.record_onchain_commit(
        store.conn,
        job_key=key,
        job_id=job_id,
        node="0xNode",
        output_q=[3],
        output_hash=output_hash([3]),
        challenge_deadline=1000,
        commit_block=5,
    )
    return key


def test_commit_recordedTwice_isOneJobSeenOnce(store: Store) -> None:
    key = _commit(store)
    _commit(store)
    job = store.job(key)
    assert job is not None and job.state is JobState.SEEN
    assert job.input_q == [1, 2] and job.output_q == [3] and job.kind is JobKind.ONCHAIN
    assert store.counters()["jobs_seen"] == 1


def test_commitWithoutKnownRequest_isNotRecorded(store: Store) -> None:
    assert not Store.record_onchain_commit(
        store.conn,
        job_key=onchain_job_key(9),
        job_id=9,
        node="0xNode",
        output_q=[3],
        output_hash=output_hash([3]),
        challenge_deadline=1000,
        commit_block=5,
    )
    assert store.job(onchain_job_key(9)) is None


def test_transition_raisesOnReplayAndOnSkippingStates_changingNothing(store: Store) -> None:
    key = _commit(store)
    with pytest.raises(IllegalTransition):  # seen -> mismatched is illegal
        store.transition(key, JobState.MISMATCHED)
    store.transition(key, JobState.SAMPLED)
    with pytest.raises(IllegalTransition):  # replay after a crash: refused, changes nothing
        store.transition(key, JobState.SAMPLED)
    store.transition(key, JobState.MISMATCHED, reason="x", witness_diff=9)
    store.transition(key, JobState.DISPUTE_SENT, tx_hash="0xabc")
    store.transition(key, JobState.DISPUTE_OPEN, bond=10**18, proof_deadline=77)
    with pytest.raises(IllegalTransition):
        store.transition(key, JobState.DISPUTE_SENT)
    job = store.job(key)
    assert job is not None
    assert (job.state, job.tx_hash, job.bond, job.proof_deadline) == (
        JobState.DISPUTE_OPEN,
        "0xabc",
        10**18,
        77,
    )
    store.transition(key, JobState.WON)
    with pytest.raises(IllegalTransition):
        store.transition(key, JobState.LOST)


def test_unknownField_isRefused(store: Store) -> None:
    key = _commit(store)
    with pytest.raises(StateError):
        store.transition(key, JobState.SAMPLED, state="won")


def test_fetchedBatch_insertsLeavesWithDecisionsOnce(store: Store) -> None:
    Store.record_batch(
        store.conn,
        batch_id=4,
        model_id=MODEL,
        node="0xNode",
        root=b"\x01" * 32,
        count=2,
        uri="http://n",
        challenge_deadline=900,
        commit_block=8,
    )
    (batch,) = store.batches(BatchState.SEEN)
    leaves = [
        (Leaf(0, 10, [1], [2], b"\x0a" * 32, b"\x0b" * 32, [b"\x0c" * 32]), True),
        (Leaf(1, 10, [1], [2], b"\x0a" * 32, b"\x0b" * 32, []), False),  # same jobId
    ]
    assert store.fetched_batch(batch, leaves)
    assert not store.fetched_batch(batch, leaves)  # replay: no-op
    assert store.batches(BatchState.SEEN) == []
    sampled = store.job(batch_leaf_key(4, 0))
    assert sampled is not None and sampled.state is JobState.SAMPLED
    assert sampled.merkle_proof == [b"\x0c" * 32] and sampled.ref == 4 and sampled.job_id == 10
    assert sampled.leaf_index == 0
    # The leaf not sampled carries no work: counted once (the replay adds nothing), not stored.
    assert store.job(batch_leaf_key(4, 1)) is None
    assert store.counters()["leaves_skipped"] == 1
    assert store.state_counts() == {"sampled": 1, "skipped": 1}
    assert store.state_counts() == {"sampled": 1, "skipped": 1}


def test_batchFetchFailures_countAttempts_untilUnavailable(store: Store) -> None:
    Store.record_batch(
        store.conn,
        batch_id=4,
        model_id=MODEL,
        node="0xNode",
        root=b"\x01" * 32,
        count=2,
        uri="http://n",
        challenge_deadline=900,
        commit_block=8,
    )
    assert store.batch_attempt_failed(4, "503") == 1
    assert store.batch_attempt_failed(4, "503") == 2
    (batch,) = store.batches(BatchState.SEEN)
    assert store.batch_unavailable(batch, [0, 1])
    assert not store.batch_unavailable(batch, [0, 1])  # replay: no-op
    assert store.batches(BatchState.UNAVAILABLE)[0].last_error == "503"
    planned = store.leaf_requests(LeafRequestState.PLANNED)
    assert [(r.batch_id, r.index) for r in planned] == [(4, 0), (4, 1)]
    assert planned[0].request_id == batch_leaf_key(4, 0)
    # Given up: counted unavailable once, not withheld (no leaf request has lapsed yet).
    assert store.counters() == {"batches_seen": 1, "jobs_seen": 2, "batches_unavailable": 1}
    assert store.report_withheld() == []


def _batch(store: Store, batch_id: int) -> None:
    Store.record_batch(
        store.conn,
        batch_id=batch_id,
        model_id=MODEL,
        node="0xNode",
        root=b"\x01" * 32,
        count=2,
        uri="http://n",
        challenge_deadline=900,
        commit_block=8,
    )


def test_invalidListingAttempt_countsTheBatchAsListingInvalid_once(store: Store) -> None:
    _batch(store, 4)
    store.batch_attempt_failed(4, "HTTP 503")
    store.batch_attempt_failed(4, "does not rebuild the committed root", invalid=True)
    store.batch_attempt_failed(4, "HTTP 503")
    (batch,) = store.batches(BatchState.SEEN)
    assert (batch.attempts, batch.invalid_attempts) == (3, 1)
    assert store.batch_unavailable(batch, [0])
    assert not store.batch_unavailable(batch, [0])
    counters = store.counters()
    assert counters["listings_invalid"] == 1
    assert "batches_unavailable" not in counters and "batches_withheld" not in counters


def test_reportWithheld_onceABatchsLeafRequestIsSlashed_oncePerBatch(store: Store) -> None:
    _batch(store, 4)
    _batch(store, 5)
    for batch in store.batches(BatchState.SEEN):
        store.batch_unavailable(batch, [0, 1])
    for bid in (4, 5):
        for i in (0, 1):
            key = batch_leaf_key(bid, i)
            store.leaf_request_transition(key, LeafRequestState.SENT)
            store.leaf_request_transition(key, LeafRequestState.OPEN, ours=True, reveal_deadline=9)
    store.leaf_request_transition(batch_leaf_key(5, 0), LeafRequestState.REVEALED)
    assert store.report_withheld() == []  # open or revealed: nothing proven
    store.leaf_request_transition(batch_leaf_key(4, 1), LeafRequestState.SLASHED)
    store.leaf_request_transition(batch_leaf_key(4, 0), LeafRequestState.SLASHED)
    ((batch, req),) = store.report_withheld()
    assert batch.batch_id == 4 and batch.withheld and req.index == 0
    assert store.report_withheld() == []  # once per batch, however many leaves lapsed
    assert Store(store.conn).report_withheld() == []  # and after a restart
    assert store.counters()["batches_withheld"] == 1
    assert store.batch(4).withheld and not store.batch(5).withheld  # type: ignore[union-attr]


def test_leafRequestTransitions_raiseOnReplay_andRevealBecomesSampledJobOnce(
    store: Store,
) -> None:
    Store.record_batch(
        store.conn,
        batch_id=4,
        model_id=MODEL,
        node="0xNode",
        root=b"\x01" * 32,
        count=2,
        uri="http://n",
        challenge_deadline=900,
        commit_block=8,
    )
    (batch,) = store.batches(BatchState.SEEN)
    store.batch_unavailable(batch, [1])
    key = batch_leaf_key(4, 1)
    with pytest.raises(IllegalTransition):  # planned: illegal
        store.leaf_request_transition(key, LeafRequestState.SLASHED)
    store.leaf_request_transition(key, LeafRequestState.SENT, tx_hash="0x1", bond=10)
    store.leaf_request_transition(key, LeafRequestState.OPEN, reveal_deadline=950)
    with pytest.raises(IllegalTransition):
        store.leaf_request_transition(key, LeafRequestState.OPEN)
    Store.record_reveal(
        store.conn,
        request_id=key,
        batch_id=4,
        index=1,
        job_id=77,
        input_q=[5, 6],
        output_q=[11],
        input_hash=b"\x0a" * 32,
        output_hash=output_hash([11]),
        dispute_deadline=1050,
        tx_hash="0xreveal",
    )
    assert [r.request_id for r in store.adopt_reveals()] == [key]
    assert store.adopt_reveals() == []  # once
    job = store.job(key)
    assert job is not None and job.state is JobState.SAMPLED
    assert (job.job_id, job.leaf_index, job.input_q, job.output_q) == (77, 1, [5, 6], [11])
    assert job.challenge_deadline == 1050 and job.merkle_proof is None
    assert store.reveal_tx(key) == "0xreveal"
    assert store.leaf_request_summary()["revealed"] == 1


def test_stateCounts_keptByTriggers_matchAGroupByOverTheRows(store: Store) -> None:
    """Issue 14: the counts are kept as rows change (insert, transition, delete), never by a
    scan; they equal the GROUP BY they replace."""
    from challenger.store import JobState as S

    for j in range(1, 6):
        Store.record_request(store.conn, j, MODEL, [1])
        Store.record_onchain_commit(
            store.conn, job_key=onchain_job_key(j), job_id=j, node="0xn", output_q=[2],
            output_hash=b"\x02" * 32, challenge_deadline=900, commit_block=10 + j,
        )  # fmt: skip
    store.transition(onchain_job_key(1), S.SKIPPED)
    store.transition(onchain_job_key(2), S.SAMPLED)
    store.transition(onchain_job_key(2), S.MATCHED)
    store.transition(onchain_job_key(3), S.SAMPLED)
    with store.transaction() as conn:
        Store.forget_after(conn, 13)  # jobs 4 and 5 go (not acted on)

    def scanned() -> dict[str, int]:
        rows = store.conn.execute("SELECT state, COUNT(*) FROM ch_jobs GROUP BY state")
        return {str(state): int(n) for state, n in rows}

    assert store.state_counts() == scanned() == {"skipped": 1, "matched": 1, "sampled": 1}


def test_databaseFromBeforeTheCounts_isCountedOnceAtOpen(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    store = Store(open_db(db))
    for j in range(1, 4):
        Store.record_request(store.conn, j, MODEL, [1])
        Store.record_onchain_commit(
            store.conn, job_key=onchain_job_key(j), job_id=j, node="0xn", output_q=[2],
            output_hash=b"\x02" * 32, challenge_deadline=900, commit_block=10,
        )  # fmt: skip
    # As an old database: no counts table, no triggers.
    for name in ("ch_jobs_count_ins", "ch_jobs_count_del", "ch_jobs_count_upd"):
        store.conn.execute(f"DROP TRIGGER {name}")
    store.conn.execute("DROP TABLE ch_state_counts")
    assert store.conn.execute("SELECT COUNT(*) FROM ch_jobs").fetchone()[0] == 3
    store.conn.close()
    again = Store(open_db(db))
    assert again.state_counts() == {"seen": 3}
    assert Store(open_db(db)).state_counts() == {"seen": 3}  # counted once, not again
