"""Leaf requests (docs/v2-protocol.md, 5): a batch nobody could read is still checked.

When no usable listing came by the last attempt, the challenger requests each sampled leaf
on chain (bonded). A revealed leaf is re-run and disputed within its dispute deadline; an
unrevealed one is settled after the reveal deadline (the node is slashed). All of it is
persisted: a kill at any point never sends twice and never forgets a settlement.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from challenger.batches import BatchClient, Fetcher
from challenger.chain_io import MAX_LEAVES_PER_REQUEST, LeafRequestView
from challenger.metrics import Metrics
from challenger.runner import status_of
from challenger.sampling import SamplingPolicy
from challenger.service import Challenger, Options
from challenger.store import BatchState, JobState, LeafRequestState, Store
from spotcheck.chain import LeafRequestStatus, TxResult
from spotcheck.encoding import batch_leaf_key, input_hash, leaf_hash, onchain_job_key, output_hash
from spotcheck.follower import ChainEvent, open_db
from spotcheck.merkle import MerkleTree, verify
from tests.unit.test_challenger_fetch import DEADLINE, LIMITS, add_batch, leaves_of, tick_until
from tests.unit.test_challenger_service import (
    BOND,
    MODEL,
    OTHER,
    PROOF_WINDOW,
    TAU,
    Crash,
    FakeChain,
    FakeReexec,
    _commit,
)

BATCH = 9
#: Four leaves, the one at position 0 a cheat; the node serves none of them to challengers.
LEAVES = leaves_of(4, cheat={0})
GIVE_UP = DEADLINE - 30


def withholding(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404, json={"detail": "unknown batch"})


def make(db: Path, chain: FakeChain, **opts: Any) -> Challenger:
    return Challenger(
        store=Store(open_db(db)),
        chain=chain,
        policy=SamplingPolicy(secret=b"\x07" * 32, default_rate=1.0),
        reexecutor_for=lambda _m: FakeReexec(),
        options=Options(max_bond_at_risk=opts.pop("cap", 10**6), fetch_wait_s=0.5, **opts),
        fetcher=Fetcher(BatchClient(limits=LIMITS, transport=httpx.MockTransport(withholding))),
    )


def setup(db: Path, chain: FakeChain) -> None:
    store = Store(open_db(db))
    add_batch(store, chain, BATCH, "http://node.test", LEAVES)
    store.conn.close()


def reveal(
    ch: Challenger, chain: FakeChain, index: int, leaf: dict[str, Any] | None = None
) -> None:
    """The node reveals leaf ``index`` (calldata holds its proof); the follower records it."""
    leaf = leaf or LEAVES[index]
    deadline = chain.reveal(BATCH, index)
    tx = f"0xreveal{index}"
    chain.reveal_proofs[tx] = tree().proof(index)
    x, y = leaf["inputQ"], leaf["outputQ"]
    event = ChainEvent(
        "LeafRevealed",
        "0xdm",
        200,
        index,
        tx,
        {
            "requestId": batch_leaf_key(BATCH, index),
            "batchId": BATCH,
            "index": index,
            "jobId": leaf["jobId"],
            "inputHash": input_hash(x),
            "outputHash": output_hash(y),
            "input": x,
            "output": y,
            "disputeDeadline": deadline,
        },
    )
    with ch.store.transaction() as conn:
        ch.handle_events([event], conn)


def leaf_hashes() -> list[bytes]:
    return [
        leaf_hash(leaf["jobId"], MODEL, input_hash(leaf["inputQ"]), output_hash(leaf["outputQ"]))
        for leaf in LEAVES
    ]


def tree() -> MerkleTree:
    return MerkleTree(leaf_hashes())


def requests_sent(chain: FakeChain) -> list[str]:
    return sorted(s for s in chain.sends if s.startswith("request"))


def test_withheldBatch_revealedCheatDisputed_unrevealedSettled_creditsWithdrawn(
    tmp_path: Path,
) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    setup(db, chain)
    ch = make(db, chain)
    tick_until(ch, chain, GIVE_UP + 5)
    assert requests_sent(chain) == [f"request {BATCH}/{i}" for i in range(4)]
    # One requestLeaves transaction for the batch's sampled leaves, not one per leaf.
    assert chain.leaf_request_txs == [(BATCH, [0, 1, 2, 3])]
    assert ch.store.batch(BATCH).state is BatchState.UNAVAILABLE  # type: ignore[union-attr]
    # Each request names the root we recorded for the batch (requestLeaf(batchId, index, root)).
    assert sorted(chain.leaf_request_roots) == [(BATCH, i, tree().root) for i in range(4)]

    reveal(ch, chain, 0)  # the cheat
    reveal(ch, chain, 1)  # an honest leaf
    report = ch.tick()
    assert report.revealed == 2
    key = batch_leaf_key(BATCH, 0)
    assert chain.sends[-1] == f"open batch {BATCH}/0"
    job_id, ih, proof = chain.dispute_proofs[key]
    assert verify(proof, root=tree().root, leaf=leaf_hashes()[0], index=0, count=4)
    assert (job_id, ih) == (LEAVES[0]["jobId"], input_hash(LEAVES[0]["inputQ"]))
    assert ch.store.job(batch_leaf_key(BATCH, 1)).state is JobState.MATCHED  # type: ignore[union-attr]

    chain.now += PROOF_WINDOW + 1  # past both the reveal deadline and the proof deadline
    ch.tick()
    assert chain.sends.count("settle_leaf") == 2  # positions 2 and 3 never revealed
    assert chain.sends.count("settle") == 1  # the disputed cheat
    assert chain.withdrawn == 3 * (BOND + 25)
    summary = ch.store.leaf_request_summary()
    assert (summary["opened"], summary["revealed"], summary["settled"]) == (4, 2, 2)
    assert summary["pending"] == 0
    metrics = Metrics()
    metrics.update_from_store(ch.store)
    sample = metrics.registry.get_sample_value
    assert sample("spotcheck_challenger_leaf_requests_opened") == 4
    assert sample("spotcheck_challenger_leaf_requests_revealed") == 2
    assert sample("spotcheck_challenger_leaf_requests_settled") == 2
    assert sample("spotcheck_challenger_disputes_won") == 1
    assert status_of(ch.store)["leaf_requests"]["settled"] == 2
    # Given up on the listing (unavailable), then proven withheld by the unrevealed leaves:
    # once for the batch, however many of its leaves lapsed.
    assert sample("spotcheck_challenger_batches_unavailable") == 1
    assert sample("spotcheck_challenger_batches_withheld") == 1
    assert sample("spotcheck_challenger_listings_invalid") == 0
    assert status_of(ch.store)["counters"]["batches_withheld"] == 1

    for _ in range(3):  # and then some: nothing is sent twice
        chain.now += 10
        ch.tick()
    assert requests_sent(chain) == [f"request {BATCH}/{i}" for i in range(4)]
    assert chain.sends.count("settle_leaf") == 2 and chain.sends.count("settle") == 1
    assert ch.store.counters()["batches_withheld"] == 1


def test_reorgPutAnotherBatchAtTheId_requestRefusedByRoot_missedOnce_noBondLocked(
    tmp_path: Path,
) -> None:
    """A reorg deeper than our confirmations moved another batch to this id: requestLeaves
    names our root, the contract reverts RootMismatch, and the request ends ``missed`` (a
    retry cannot help) instead of locking a bond on someone else's batch."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    setup(db, chain)
    chain.batch_roots[BATCH] = b"\x99" * 32  # the batch at this id on chain now
    ch = make(db, chain)
    tick_until(ch, chain, GIVE_UP + 5)
    assert requests_sent(chain) == [] and chain.leaf_requests == {}
    assert chain.bond_at_risk() == 0
    for i in range(4):
        req = ch.store.leaf_request(batch_leaf_key(BATCH, i))
        assert req is not None and req.state is LeafRequestState.MISSED
        assert "root mismatch" in (req.reason or "")
    assert chain.calls["request_leaves"] == 1  # one attempt for the batch, never retried
    tick_until(ch, chain, GIVE_UP + 15)
    assert chain.calls["request_leaves"] == 1


def test_revealedOutOfDomainInput_isNeverDisputed(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain(in_lo=0, in_hi=100)
    setup(db, chain)
    ch = make(db, chain)
    tick_until(ch, chain, GIVE_UP + 5)
    bad = {"jobId": 1, "inputQ": [-5, 3], "outputQ": [999]}  # out of domain, and "wrong"
    reveal(ch, chain, 0, bad)
    ch.tick()
    job = ch.store.job(batch_leaf_key(BATCH, 0))
    assert job is not None and job.state is JobState.UNDISPUTABLE
    assert "outside the domain" in (job.reason or "")
    assert not any(s.startswith("open") for s in chain.sends)


def test_onchainJobOutOfDomain_isNeverDisputed(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain(in_lo=0, in_hi=2)  # job 5's input is [5, 1]
    store = Store(open_db(db))
    _commit(store.conn, 5, 6 + TAU + 1)
    ch = make(db, chain)
    ch.tick()
    assert chain.sends == []
    assert ch.store.job(onchain_job_key(5)).state is JobState.UNDISPUTABLE  # type: ignore[union-attr]


def test_foreignRequestOnOurLeaf_adoptedNotDuplicated_settledIfNeverRevealed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    setup(db, chain)
    key = batch_leaf_key(BATCH, 2)
    chain.leaf_requests[key] = LeafRequestView(LeafRequestStatus.OPEN, OTHER, BOND, GIVE_UP + 50, 0)
    ch = make(db, chain)
    tick_until(ch, chain, GIVE_UP + 5)
    assert f"request {BATCH}/2" not in chain.sends
    assert ch.store.leaf_request(key).state is LeafRequestState.FOREIGN  # type: ignore[union-attr]
    chain.now = GIVE_UP + 51
    ch.tick()
    assert chain.leaf_requests[key].status is LeafRequestStatus.SLASHED  # we settled it anyway
    assert ch.store.leaf_request(key).state is LeafRequestState.SLASHED  # type: ignore[union-attr]
    # The lapsed request is on a leaf we planned to request: the batch is proven withheld,
    # whoever's transaction opened the request first.
    assert ch.store.counters()["batches_withheld"] == 1


def test_cheatBlockedByAnotherLeafRequest_revealedAfterTheBatchDeadline_stillDisputed(
    tmp_path: Path,
) -> None:
    """The node's second address requests the very leaf we found wrong (no dispute while a
    request is open) and reveals it only after the batch's challenge deadline: the reveal
    reopens the leaf until its own dispute deadline, and the challenger must not give up."""
    from tests.unit.test_challenger_fetch import listing

    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    add_batch(store, chain, BATCH, "http://node.test", LEAVES)
    store.conn.close()
    key = batch_leaf_key(BATCH, 0)  # the cheat
    chain.leaf_requests[key] = LeafRequestView(
        LeafRequestStatus.OPEN, OTHER, BOND, DEADLINE + 40, 0
    )
    served = listing(LEAVES)
    ch = Challenger(
        store=Store(open_db(db)),
        chain=chain,
        policy=SamplingPolicy(secret=b"\x07" * 32, default_rate=1.0),
        reexecutor_for=lambda _m: FakeReexec(),
        options=Options(max_bond_at_risk=10**6),
        fetcher=Fetcher(
            BatchClient(
                transport=httpx.MockTransport(lambda _r: httpx.Response(200, content=served))
            )
        ),
    )
    ch.tick()
    assert ch.store.job(key).state is JobState.MISMATCHED  # type: ignore[union-attr]
    chain.now = DEADLINE + 30  # past the batch's deadline, the request still open
    ch.tick()
    assert ch.store.job(key).state is JobState.MISMATCHED  # type: ignore[union-attr]
    chain.leaf_requests[key] = LeafRequestView(
        LeafRequestStatus.REVEALED, OTHER, BOND, DEADLINE + 40, DEADLINE + 130
    )
    chain.now = DEADLINE + 35
    ch.tick()
    assert ch.store.job(key).state is JobState.DISPUTE_OPEN  # type: ignore[union-attr]
    assert f"open batch {BATCH}/0" in chain.sends


def test_dryRun_reportsLeafRequests_sendsNothing(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    setup(db, chain)
    ch = make(db, chain, dry_run=True)
    tick_until(ch, chain, GIVE_UP + 5)
    assert chain.sends == []
    assert ch.store.leaf_request_summary()["reported_dry_run"] == 4


def test_bondCap_defersLeafRequests(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    setup(db, chain)
    ch = make(db, chain, cap=2 * BOND)
    tick_until(ch, chain, GIVE_UP + 5)
    assert len(requests_sent(chain)) == 2  # our open requests' bonds count against the cap
    # The group's whole bond counts: the first transaction took the two leaves that fit.
    assert chain.leaf_request_txs[0] == (BATCH, [0, 1])
    assert all(txs == (BATCH, [0, 1]) for txs in chain.leaf_request_txs)
    deferred = [ch.store.leaf_request(batch_leaf_key(BATCH, i)) for i in (2, 3)]
    assert all(r is not None and r.state is LeafRequestState.PLANNED for r in deferred)


def test_windowClosedBeforeSending_leafRequestMissed(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    setup(db, chain)
    ch = make(db, chain)
    chain.fail_sends = 100  # the RPC refuses every transaction until the window closes
    tick_until(ch, chain, DEADLINE + 1, step=5)
    chain.fail_sends = 0
    ch.tick()
    assert ch.store.leaf_request_summary()["missed"] == 4
    assert requests_sent(chain) == []


def _to_the_end(db: Path, chain: FakeChain) -> None:
    """The reference scenario, restarting the challenger whenever it is killed."""

    def run(until: int, step: int = 5) -> None:
        while chain.now <= until:
            try:
                make(db, chain).tick()
            except Crash:
                continue
            chain.now += step

    run(GIVE_UP + 5)
    ch = make(db, chain)
    reveal(ch, chain, 0)
    run(GIVE_UP + 5 + PROOF_WINDOW + 20)


CRASH_POINTS = [
    (name, occurrence, when)
    for name, count in (("request_leaves", 1), ("settle_leaf_request", 3))
    for occurrence in range(count)
    for when in ("before", "after")
]


@pytest.mark.parametrize("crash", CRASH_POINTS, ids=lambda c: f"{c[2]}-{c[0]}-{c[1]}")
def test_killedAroundLeafRequestTransactions_sameEndState_noDoubleSends(
    tmp_path_factory: pytest.TempPathFactory, crash: tuple[str, int, str]
) -> None:
    ref_db = tmp_path_factory.mktemp("ref") / "c.sqlite"
    reference = FakeChain()
    setup(ref_db, reference)
    _to_the_end(ref_db, reference)

    db = tmp_path_factory.mktemp("crash") / "c.sqlite"
    chain = FakeChain(crash_at=crash)
    setup(db, chain)
    _to_the_end(db, chain)
    assert chain.crash_at is None, "the crash point was reached"
    assert chain.leaf_requests == reference.leaf_requests
    assert chain.disputes == reference.disputes
    assert sorted(chain.sends) == sorted(reference.sends)  # nothing sent twice
    assert (chain.withdrawn, chain.credit) == (reference.withdrawn, 0)
    assert Store(open_db(db)).leaf_request_summary() == {
        "opened": 4,
        "revealed": 1,
        "settled": 3,
        "pending": 0,
        "missed": 0,
        "preempted": 0,
        "reported_dry_run": 0,
    }


def test_reorgDropsOurOpenLeafRequest_sentAgainOnce_notWhilePending(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    setup(db, chain)
    ch = make(db, chain)
    tick_until(ch, chain, GIVE_UP + 5)
    key = batch_leaf_key(BATCH, 2)
    assert ch.store.leaf_request(key).state is LeafRequestState.OPEN  # type: ignore[union-attr]
    del chain.leaf_requests[key]  # a reorg dropped our request
    chain.pending_txs.add(f"0xreqs{BATCH}-0")  # ... and its transaction is in the mempool
    ch.tick()
    ch.tick()
    assert ch.store.leaf_request(key).state is LeafRequestState.OPEN  # type: ignore[union-attr]
    assert requests_sent(chain).count(f"request {BATCH}/2") == 1
    chain.pending_txs.clear()  # gone for good
    ch.tick()  # planned again
    ch.tick()  # sent again
    assert ch.store.leaf_request(key).state is LeafRequestState.OPEN  # type: ignore[union-attr]
    assert requests_sent(chain).count(f"request {BATCH}/2") == 2
    # Sent again alone: the batch's other leaves still have their requests.
    assert chain.leaf_request_txs == [(BATCH, [0, 1, 2, 3]), (BATCH, [2])]


def test_leafRequestedByAnotherChallengerFirst_skippedInOurTransaction_endsForeign(
    tmp_path: Path,
) -> None:
    """Another challenger's request on leaf 1 lands in a block before ours: requestLeaves
    skips it (the rest of ours still open), and the row ends FOREIGN, not a second request."""

    class FrontRun(FakeChain):
        def request_leaves(
            self, batch_id: int, indices: Sequence[int], root: bytes, bond_each: int
        ) -> TxResult:
            key = batch_leaf_key(batch_id, 1)
            self.leaf_requests[key] = LeafRequestView(
                LeafRequestStatus.OPEN, OTHER, bond_each, self.now + PROOF_WINDOW, 0
            )
            return super().request_leaves(batch_id, indices, root, bond_each)

    db = tmp_path / "c.sqlite"
    chain = FrontRun()
    setup(db, chain)
    ch = make(db, chain)
    tick_until(ch, chain, GIVE_UP + 5)
    assert chain.leaf_request_txs == [(BATCH, [0, 1, 2, 3])]
    assert requests_sent(chain) == [f"request {BATCH}/{i}" for i in (0, 2, 3)]
    states = {i: ch.store.leaf_request(batch_leaf_key(BATCH, i)) for i in range(4)}
    assert states[1] is not None and states[1].state is LeafRequestState.FOREIGN
    assert states[1].requester == OTHER
    for i in (0, 2, 3):
        assert states[i] is not None and states[i].state is LeafRequestState.OPEN  # type: ignore[union-attr]
    assert chain.bond_at_risk() == 3 * BOND


def test_fortyLeavesOfOneBatch_twoTransactionsOfAtMost32(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    add_batch(store, chain, BATCH, "http://node.test", leaves_of(40))
    store.conn.close()
    ch = make(db, chain)
    tick_until(ch, chain, GIVE_UP + 5)
    assert [len(ix) for _, ix in chain.leaf_request_txs] == [MAX_LEAVES_PER_REQUEST, 8]
    assert sorted(i for _, ix in chain.leaf_request_txs for i in ix) == list(range(40))
    assert ch.store.leaf_request_summary()["opened"] == 40


def test_twoWithheldBatches_earliestDeadlineSentFirst_oneTransactionEach(
    tmp_path: Path,
) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    store = Store(open_db(db))
    add_batch(store, chain, 20, "http://node.test", leaves_of(3), deadline=DEADLINE + 20)
    add_batch(store, chain, 21, "http://node.test", leaves_of(2, first_job=900))
    store.conn.close()
    ch = make(db, chain)
    chain.fail_sends = 10**6  # the RPC refuses transactions until both batches are planned
    tick_until(ch, chain, GIVE_UP + 25)
    assert chain.leaf_request_txs == []
    chain.fail_sends = 0
    ch.tick()
    # One transaction per batch, the one whose window closes first first.
    assert chain.leaf_request_txs == [(21, [0, 1]), (20, [0, 1, 2])]


def test_crashAfterTheBatchTransaction_restartAdoptsEveryLeaf_noSecondRequest(
    tmp_path: Path,
) -> None:
    """Killed after requestLeaves was mined, before any row was marked sent: the restart
    finds each leaf's request on chain (ours) and adopts it; nothing is sent again."""
    db = tmp_path / "c.sqlite"
    chain = FakeChain(crash_at=("request_leaves", 0, "after"))
    setup(db, chain)
    with pytest.raises(Crash):
        tick_until(make(db, chain), chain, GIVE_UP + 5)
    assert all(
        r.state is LeafRequestState.PLANNED
        for r in Store(open_db(db)).leaf_requests(LeafRequestState.PLANNED)
    )
    ch = make(db, chain)
    ch.tick()
    assert chain.calls["request_leaves"] == 1
    for i in range(4):
        row = ch.store.leaf_request(batch_leaf_key(BATCH, i))
        assert row is not None and row.state is LeafRequestState.OPEN
