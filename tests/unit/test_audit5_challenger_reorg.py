"""Audit 5 (the challenger's reorg roll-back, ``Store.forget_after``): a ``LeafRevealed`` that a
reorg replaced is never forgotten. ``ch_reveals`` has no block and the roll-back does not touch
it, and the leaf request it turned ``revealed`` (and the leaf job it created, whose commit block
is the batch's, before the fork) stay. When the new branch holds no reveal, the leaf request is
still open on chain, but the challenger follows only planned/sent/open/foreign requests: it
never settles it (the node is not slashed for withholding, and the requester's bond stays in
``bondAtRisk``, lowering the dispute cap) and judges a leaf the chain no longer shows.

The test asserts the SAFE behaviour and is a strict xfail (A5-5). The chain is faked under
LogFollower's three reads; the handler and the roll-back are the challenger service's."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

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


@pytest.mark.xfail(
    strict=True,
    reason="A5-5: forget_after keeps a LeafRevealed from a replaced block (ch_reveals has no "
    "block); the leaf request stays 'revealed' and is never settled",
)
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
    service: Any = SimpleNamespace(chain=None, _seeds={})
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


@pytest.mark.xfail(
    strict=True,
    reason="A5-7: a dispute of ours that a reorg dropped leaves the job 'dispute_open' for "
    "good: resolve() ignores a dispute the chain no longer has; the wrong output is never "
    "disputed again",
)
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
    service: Any = SimpleNamespace(_seeds={})
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
