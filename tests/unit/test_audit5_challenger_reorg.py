"""Audit 5 (the challenger's reorg roll-back, ``Store.forget_after``): a ``LeafRevealed`` that a
reorg replaced is never forgotten. ``ch_reveals`` has no block and the roll-back does not touch
it, and the leaf request it turned ``revealed`` (and the leaf job it created, whose commit block
is the batch's, before the fork) stay. When the new branch holds no reveal, the leaf request is
still open on chain, but the challenger follows only planned/sent/open/foreign requests: it
never settles it (the node is not slashed for withholding, and the requester's bond stays in
``bondAtRisk``, lowering the dispute cap) and judges a leaf the chain no longer shows.

The test asserts the SAFE behaviour (A5-5; fixed: ``ch_reveals`` keeps each reveal's block and
``Store.forget_after`` forgets it). The chain is faked under
LogFollower's three reads; the handler and the roll-back are the challenger service's."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from challenger.service import Challenger as ChallengerService
from challenger.store import LeafRequestState, Store
from spotcheck.encoding import batch_leaf_key
from spotcheck.follower import ChainEvent, LogFollower, open_db

MODEL = b"\x42" * 32
BATCH = 3
INDEX = 1
DEADLINE = 10_000


class FakeChainFollower(LogFollower):
    chain: dict[str, Any]

    def _block_hash(self, number: int) -> bytes:  # type: ignore[override]
        return self.chain["hashes"][number]

    def _head(self) -> int:  # type: ignore[override]
        return int(self.chain["head"])

    def _fetch(self, start: int, stop: int) -> list[ChainEvent]:
        return [e for e in self.chain["events"] if start <= e.block_number <= stop]


def _revealed(block: int, request_id: bytes) -> ChainEvent:
    return ChainEvent(
        "LeafRevealed", "0xdm", block, 0, "0x" + f"{block:064x}",
        {
            "requestId": request_id, "batchId": BATCH, "index": INDEX, "jobId": 77,
            "input": [1, 2], "output": [3], "disputeDeadline": 5000,
        },
    )  # fmt: skip


def test_audit5_reorgDropsTheReveal_leafRequestIsFollowedAgain(tmp_path: Path) -> None:
    store = Store(open_db(tmp_path / "c.sqlite"))
    rid = batch_leaf_key(BATCH, INDEX)
    # The node's batch (block 80) and our leaf request on it (sent, seen on chain).
    Store.record_batch(
        store.conn, batch_id=BATCH, model_id=MODEL, node="0xnode", root=b"\x01" * 32,
        count=4, uri="http://n", challenge_deadline=DEADLINE, commit_block=80,
    )  # fmt: skip
    store.conn.execute(
        "INSERT INTO ch_leaf_requests(request_id, batch_id, leaf_index, model_id, node, "
        "challenge_deadline, state, requester, bond, reveal_deadline, tx_hash, ours, updated_at)"
        " VALUES (?, ?, ?, ?, '0xnode', ?, ?, '0xme', '10', 4000, '0xreq', 1, 0)",
        (rid, str(BATCH), INDEX, MODEL, DEADLINE, LeafRequestState.OPEN.value),
    )
    store.conn.commit()
    service: Any = SimpleNamespace(chain=None, _seeds={}, defender=None, revealer=None)
    handler = lambda events, conn: ChallengerService.handle_events(service, events, conn)  # noqa: E731
    rollback = lambda conn, fork: ChallengerService.rollback(service, conn, fork)  # noqa: E731
    follower = FakeChainFollower(store.conn, "challenger", [], max_range=10)
    follower.chain = {
        "head": 100,
        "hashes": {n: n.to_bytes(32, "big") for n in range(0, 200)},
        "events": [_revealed(90, rid)],
    }
    follower.process(handler, rollback=rollback)  # as challenger/service.py tick does
    store.adopt_reveals()  # the tick's adopt_reveals step
    req = store.leaf_request(rid)
    assert req is not None and req.state is LeafRequestState.REVEALED
    assert store.job(rid) is not None  # the revealed leaf became a job
    # A reorg replaces blocks 85..: the new branch holds no reveal (the request is open on
    # chain again; its reveal deadline will pass).
    follower.chain = {
        "head": 110,
        "hashes": {n: (n if n < 85 else n + 10_000).to_bytes(32, "big") for n in range(0, 200)},
        "events": [],
    }
    follower.process(handler, rollback=rollback)
    store.adopt_reveals()
    req = store.leaf_request(rid)
    assert req is not None
    # SAFE: the request is one the challenger follows again (settled once never revealed).
    followed = {LeafRequestState.SENT, LeafRequestState.OPEN, LeafRequestState.FOREIGN}
    assert req.state in followed, (
        f"after the reorg removed the reveal, our leaf request is still '{req.state.value}': "
        "leaf_requests() never settles it"
    )
    assert req.state is LeafRequestState.OPEN  # ours on chain: followed, settled once late
    assert store.job(rid) is None, "the leaf job made from the dropped reveal is kept"
    assert store.reveal_tx(rid) is None


def _reorg_setup(tmp_path: Path, ours: int) -> tuple[Store, bytes, FakeChainFollower, Any, Any]:
    store = Store(open_db(tmp_path / "c.sqlite"))
    rid = batch_leaf_key(BATCH, INDEX)
    Store.record_batch(
        store.conn, batch_id=BATCH, model_id=MODEL, node="0xnode", root=b"\x01" * 32,
        count=4, uri="http://n", challenge_deadline=DEADLINE, commit_block=80,
    )  # fmt: skip
    state = LeafRequestState.OPEN if ours else LeafRequestState.FOREIGN
    store.conn.execute(
        "INSERT INTO ch_leaf_requests(request_id, batch_id, leaf_index, model_id, node, "
        "challenge_deadline, state, requester, bond, reveal_deadline, tx_hash, ours, updated_at)"
        " VALUES (?, ?, ?, ?, '0xnode', ?, ?, '0xme', '10', 4000, '0xreq', ?, 0)",
        (rid, str(BATCH), INDEX, MODEL, DEADLINE, state.value, ours),
    )
    store.conn.commit()
    service: Any = SimpleNamespace(chain=None, _seeds={}, defender=None, revealer=None)
    handler = lambda events, conn: ChallengerService.handle_events(service, events, conn)  # noqa: E731
    rollback = lambda conn, fork: ChallengerService.rollback(service, conn, fork)  # noqa: E731
    follower = FakeChainFollower(store.conn, "challenger", [], max_range=10)
    follower.chain = {
        "head": 100,
        "hashes": {n: n.to_bytes(32, "big") for n in range(0, 200)},
        "events": [_revealed(90, rid)],
    }
    follower.process(handler, rollback=rollback)
    store.adopt_reveals()
    return store, rid, follower, handler, rollback


def _fork_at_85(events: list[ChainEvent]) -> dict[str, Any]:
    return {
        "head": 110,
        "hashes": {n: (n if n < 85 else n + 10_000).to_bytes(32, "big") for n in range(0, 200)},
        "events": events,
    }


def test_reorgMovesTheReveal_revealedAgainFromTheNewBlock(tmp_path: Path) -> None:
    store, rid, follower, handler, rollback = _reorg_setup(tmp_path, ours=1)
    follower.chain = _fork_at_85([_revealed(95, rid)])  # re-mined in the new branch
    follower.process(handler, rollback=rollback)
    store.adopt_reveals()
    req = store.leaf_request(rid)
    assert req is not None and req.state is LeafRequestState.REVEALED
    assert store.job(rid) is not None
    (block,) = store.conn.execute(
        "SELECT block FROM ch_reveals WHERE request_id = ?", (rid,)
    ).fetchone()
    assert block == 95


def test_reorgDropsAForeignReveal_requestReDecided(tmp_path: Path) -> None:
    store, rid, follower, handler, rollback = _reorg_setup(tmp_path, ours=0)
    follower.chain = _fork_at_85([])
    follower.process(handler, rollback=rollback)
    req = store.leaf_request(rid)
    # Not ours on chain: planned again (the send step adopts a request found on chain first).
    assert req is not None and req.state is LeafRequestState.PLANNED
    assert store.job(rid) is None


def test_reorgDropsTheReveal_disputedLeafJobKept(tmp_path: Path) -> None:
    from challenger.store import JobState

    store, rid, follower, handler, rollback = _reorg_setup(tmp_path, ours=1)
    store.conn.execute(
        "UPDATE ch_jobs SET state = ?, tx_hash = '0xd' WHERE job_key = ?",
        (JobState.DISPUTE_OPEN.value, rid),
    )
    store.conn.commit()
    follower.chain = _fork_at_85([])
    follower.process(handler, rollback=rollback)
    job = store.job(rid)
    assert job is not None and job.state is JobState.DISPUTE_OPEN  # resolve re-reads it
    req = store.leaf_request(rid)
    assert req is not None and req.state is LeafRequestState.OPEN


def test_oldDatabase_revealsGainTheBlockColumn(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "c.sqlite")
    conn.execute(
        "CREATE TABLE ch_reveals (request_id BLOB PRIMARY KEY, batch_id TEXT NOT NULL, "
        "leaf_index INTEGER NOT NULL, job_id TEXT NOT NULL, input_q TEXT NOT NULL, "
        "output_q TEXT NOT NULL, input_hash BLOB NOT NULL, output_hash BLOB NOT NULL, "
        "dispute_deadline INTEGER NOT NULL, tx_hash TEXT, merkle_proof TEXT)"
    )
    conn.execute(
        "INSERT INTO ch_reveals VALUES (?, '3', 1, '77', '[1]', '[2]', x'01', x'02', 5, NULL, "
        "NULL)",
        (b"\x09" * 32,),
    )
    conn.commit()
    store = Store(conn)
    cols = {r[1] for r in store.conn.execute("PRAGMA table_info(ch_reveals)").fetchall()}
    assert "block" in cols
    with store.transaction() as c:
        Store.forget_after(c, 0)  # a reveal of unknown block is kept
    assert store.conn.execute("SELECT COUNT(*) FROM ch_reveals").fetchone()[0] == 1


class _DisputeChain:
    """DisputeManager and JobManager reads after the reorg: our dispute is gone, the node's
    commit (block 80, before the fork) is still Committed inside its window."""

    me = "0x" + "cc" * 20

    def dispute(self, job_key: bytes) -> Any:
        from challenger.chain_io import DisputeView
        from spotcheck.chain import DisputeStatus

        return DisputeView(DisputeStatus.NONE, "0x" + "00" * 20, 0, 0)

    def timestamp(self) -> int:
        return 1000  # the job's challenge deadline is 2000: still disputable

    def tx_pending(self, tx_hash: str) -> bool:
        return False  # dropped for good: not back in the mempool


def test_audit5_reorgDropsOurDispute_jobIsDisputedAgain(tmp_path: Path) -> None:
    from challenger.service import StepReport
    from challenger.store import JobState
    from spotcheck.encoding import onchain_job_key
    from tests.unit.test_challenger_claims import FakePool, _matched

    store = Store(open_db(tmp_path / "c.sqlite"))
    _matched(store, FakePool(), 5, commit_block=80)  # committed in block 80
    key = onchain_job_key(5)
    # Judged wrong; our openDispute mined in block 92 and adopted (dispute_open).
    store.conn.execute(
        "UPDATE ch_jobs SET state = ?, tx_hash = '0xd1', proof_deadline = 1500 WHERE job_key = ?",
        (JobState.DISPUTE_OPEN.value, key),
    )
    store.conn.commit()
    # A reorg replaces blocks 85..: the follower calls the service's rollback.
    service: Any = SimpleNamespace(_seeds={}, defender=None, revealer=None)
    with store.transaction() as conn:
        ChallengerService.rollback(service, conn, 85)
    # The next ticks' resolve step, with the chain showing no dispute on the job.
    svc: Any = object.__new__(ChallengerService)
    svc.store = store
    svc.chain = _DisputeChain()
    for _ in range(3):
        ChallengerService.resolve(svc, StepReport())
    job = store.job(key)
    assert job is not None
    # SAFE: the job is disputable again (mismatched: the dispute step sends it again).
    assert job.state is JobState.MISMATCHED, (
        f"the job stays '{job.state.value}' although the chain has no dispute on it: the "
        "wrong output is never disputed again (window open until 2000)"
    )
