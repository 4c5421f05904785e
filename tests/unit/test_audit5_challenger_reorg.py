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
