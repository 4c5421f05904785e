"""Why a job ends ``missed``: the journal tells a job the challenger first recorded after its
window closed (it never had a chance) from one it saw in time and did not finish, and a wrong
leaf that someone else's unrevealed leaf request already punished is not a miss at all."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from challenger.batches import BatchClient, Fetcher
from challenger.chain_io import LeafRequestView
from challenger.runner import status_of
from challenger.sampling import SamplingPolicy
from challenger.service import Challenger, Options
from challenger.store import (
    MISSED_BEFORE_CHECK,
    MISSED_SEEN_LATE,
    BatchState,
    JobState,
    Store,
)
from spotcheck.chain import LeafRequestStatus
from spotcheck.encoding import batch_leaf_key, onchain_job_key, output_hash
from spotcheck.follower import ChainEvent, open_db
from tests.unit.test_challenger_fetch import (
    DEADLINE,
    add_batch,
    leaves_of,
    listing,
    root_of,
)
from tests.unit.test_challenger_service import BOND, MODEL, OTHER, FakeChain, FakeReexec

BATCH = 9
LEAVES = leaves_of(4, cheat={0})


def _challenger(
    db: Path, chain: FakeChain, transport: httpx.MockTransport, wait: float = 0.5
) -> Challenger:
    return Challenger(
        store=Store(open_db(db)),
        chain=chain,
        policy=SamplingPolicy(secret=b"\x07" * 32, default_rate=1.0),
        reexecutor_for=lambda _m: FakeReexec(),
        options=Options(max_bond_at_risk=10**6, fetch_wait_s=wait),
        fetcher=Fetcher(BatchClient(transport=transport)),
    )


def _serving() -> httpx.MockTransport:
    served = listing(LEAVES)
    return httpx.MockTransport(lambda _r: httpx.Response(200, content=served))


def test_cheatWhoseLeafAnotherRequestSettled_isPreempted_notMissed(tmp_path: Path) -> None:
    """Another challenger could not read the listing and requested our wrong leaf; the node
    never revealed it and was slashed for it. The contract refuses any dispute on that leaf
    (``NotDisputable``): retrying it until the window closed ended it ``missed``."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    add_batch(store, chain, BATCH, "http://node.test", LEAVES)
    store.conn.close()
    key = batch_leaf_key(BATCH, 0)  # the cheat
    chain.leaf_requests[key] = LeafRequestView(LeafRequestStatus.SLASHED, OTHER, BOND, 1010, 0)
    ch = _challenger(db, chain, _serving())
    ch.tick()
    assert ch.store.batch(BATCH).state is BatchState.FETCHED  # type: ignore[union-attr]
    for now in (chain.now + 1, DEADLINE - 1, DEADLINE + 1):
        chain.now = now
        ch.tick()
    job = ch.store.job(key)
    assert job is not None and job.state is JobState.PREEMPTED, job
    assert f"open batch {BATCH}/0" not in chain.sends
    assert ch.store.state_counts().get("missed", 0) == 0


def test_batchFirstSeenAfterItsDeadline_isExpiredUnlisted_notAMissedJob(tmp_path: Path) -> None:
    """The follower records a BatchCommitted at a tick whose chain time is already past the
    batch's deadline (the challenger was down, or its follower far behind): the batch is stamped
    with that time, never listed (``expired``, ``batches_seen_late``), and none of its leaves
    becomes a job: nothing is ``missed``, nothing is requested."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain(now=DEADLINE + 5)
    chain.batch_deadlines[BATCH] = DEADLINE
    chain.batch_roots[BATCH] = root_of(LEAVES)
    asked: list[httpx.Request] = []
    served = listing(LEAVES)

    def serve(r: httpx.Request) -> httpx.Response:
        asked.append(r)
        return httpx.Response(200, content=served)

    ch = _challenger(db, chain, httpx.MockTransport(serve))
    ch._tick_time = chain.now  # as tick() sets it before the follower runs
    event = ChainEvent(
        "BatchCommitted",
        "0xbm",
        10,
        0,
        "0xbatch",
        {
            "batchId": BATCH,
            "modelId": "0x" + MODEL.hex(),
            "node": "0x" + "ab" * 20,
            "root": "0x" + root_of(LEAVES).hex(),
            "count": len(LEAVES),
            "uri": "http://node.test",
            "challengeDeadline": DEADLINE,
        },
    )
    with ch.store.transaction() as conn:
        ch.handle_events([event], conn)
    batch = ch.store.batch(BATCH)
    assert batch is not None and batch.seen_at == DEADLINE + 5
    ch.tick()
    assert ch.store.batch(BATCH).state is BatchState.EXPIRED  # type: ignore[union-attr]
    assert not asked  # its listing was never asked for
    assert ch.store.counters().get("batches_seen_late") == 1
    assert ch.store.state_counts().get("missed", 0) == 0
    assert not any(s.startswith("request") for s in chain.sends), chain.sends


def test_batchRowFromBeforeSeenAt_listingRecordedAfterItsDeadline_leavesMissedAsSeenLate(
    tmp_path: Path,
) -> None:
    """A batch row from before ``ch_batches.seen_at`` (when it was first seen is unknown) whose
    listing is recorded after its deadline: its leaves' first-seen time falls back to the
    listing's. They are ``missed`` as "seen after window closed", with that chain time, and
    ``status`` lists each one. (A stamped batch keeps its own time:
    ``test_audit8_batchSeenInTime_listingRecordedLate_isNotExcusedAsSeenLate``.)"""
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    add_batch(store, chain, BATCH, "http://node.test", LEAVES, stamped=False)
    store.conn.close()
    release = threading.Event()
    served = listing(LEAVES)

    def slow(_r: httpx.Request) -> httpx.Response:
        release.wait(10)
        return httpx.Response(200, content=served)

    ch = _challenger(db, chain, httpx.MockTransport(slow), wait=0.0)
    ch.tick()  # the attempt starts and is still running at the end of the tick
    assert ch.fetcher.busy(BATCH)
    chain.now = DEADLINE + 5
    release.set()
    while not all(f.done() for _, f in ch.fetcher._inflight.values()):
        threading.Event().wait(0.01)
    ch.tick()
    assert ch.store.batch(BATCH).state is BatchState.FETCHED  # type: ignore[union-attr]
    missed = ch.store.jobs(JobState.MISSED)
    assert missed and all(j.seen_at == DEADLINE + 5 for j in missed)
    assert {j.reason for j in missed} == {MISSED_SEEN_LATE}
    status = status_of(ch.store)
    assert status["missed_by_reason"] == {MISSED_SEEN_LATE: len(missed)}
    row = status["missed_jobs"][0]
    assert (row["kind"], row["ref"], row["seen_at"]) == ("batch_leaf", BATCH, DEADLINE + 5)
    assert row["challenge_deadline"] == DEADLINE and row["reason"] == MISSED_SEEN_LATE


def _commit(store: Store, job_id: int, seen_at: int | None) -> None:
    Store.record_request(store.conn, job_id, MODEL, [job_id, 1])
    Store.record_onchain_commit(
        store.conn,
        job_key=onchain_job_key(job_id),
        job_id=job_id,
        node="0xnode",
        output_q=[job_id + 1],
        output_hash=output_hash([job_id + 1]),
        challenge_deadline=2000,
        commit_block=10,
        seen_at=seen_at,
    )


def test_windowClosedBeforeCheck_reasonSaysWhetherTheJobWasSeenInTime(tmp_path: Path) -> None:
    """Seen before the deadline and not re-run in time: a miss this challenger could have
    avoided. Seen at the deadline or later (or never stamped: an old row) are told apart."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain(now=2001)
    store = Store(open_db(db))
    _commit(store, 1, seen_at=1500)
    _commit(store, 2, seen_at=2000)  # a transaction sent now lands after the deadline
    _commit(store, 3, seen_at=None)
    store.conn.close()
    ch = _challenger(db, chain, _serving())
    ch.tick()
    reasons = {j.job_id: j.reason for j in ch.store.jobs(JobState.MISSED)}
    assert reasons == {1: MISSED_BEFORE_CHECK, 2: MISSED_SEEN_LATE, 3: MISSED_BEFORE_CHECK}
    kinds = {r["job_id"]: r["kind"] for r in status_of(ch.store)["missed_jobs"]}
    assert kinds == {1: "onchain", 2: "onchain", 3: "onchain"}


def test_databaseFromBeforeSeenAt_gainsTheColumn_oldRowsUnknown(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    store = Store(open_db(db))
    _commit(store, 1, seen_at=1500)
    Store.record_batch(
        store.conn, batch_id=BATCH, model_id=MODEL, node="0xnode", root=b"\x01" * 32, count=4,
        uri="http://n", challenge_deadline=2000, commit_block=10, seen_at=1500,
    )  # fmt: skip
    store.conn.execute("ALTER TABLE ch_jobs DROP COLUMN seen_at")  # as a running database was
    store.conn.execute("ALTER TABLE ch_batches DROP COLUMN seen_at")
    store.conn.close()
    store = Store(open_db(db))
    job = store.job(onchain_job_key(1))
    assert job is not None and job.seen_at is None
    batch = store.batch(BATCH)
    assert batch is not None and batch.seen_at is None
