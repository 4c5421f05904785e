"""The leaf reveal state machine (``challenger.reveals``, audit A6-4) against an in-memory
DisputeManager: someone else's leaf request on a leaf we claimed is revealed by us at the
margin when the node is silent, not at all when the node reveals first, exactly once across
restarts, and on time when a reorg re-mines the request with an earlier deadline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from challenger.chain_io import LeafRequestView
from challenger.defence import DefendMode
from challenger.reveals import ACTIVE, Revealer, RevealOptions, RevealState, RevealStore
from challenger.sampling import SamplingPolicy
from challenger.service import Challenger, Options
from challenger.store import ClaimState, JobState, Leaf, Store
from spotcheck.chain import LeafRequestStatus, TxResult
from spotcheck.encoding import batch_leaf_key
from spotcheck.errors import ChainError, RevertError
from spotcheck.follower import ChainEvent, open_db

MODEL = b"\x42" * 32
ME = "0x" + "cc" * 20
NODE = "0x" + "aa" * 20
SYBIL = "0x" + "bb" * 20
BATCH = 4
INDEX = 1
JOB_ID = 11
INPUT = [1, 2]
OUTPUT = [3]
PATH = [b"\x07" * 32]
REQUESTED_AT = 1000
DEADLINE = REQUESTED_AT + 600
RESERVE = 60
KEY = batch_leaf_key(BATCH, INDEX)
ZERO = "0x" + "00" * 20


@dataclass
class FakeLeafRequests:
    """DisputeManager's leaf requests and ``revealLeaf`` as the revealer sees them."""

    me: str = ME
    now: int = REQUESTED_AT
    height: int = 100
    requests: dict[bytes, LeafRequestView] = field(default_factory=dict)
    reveals: list[tuple[int, int, int, list[int], list[int], list[bytes]]] = field(
        default_factory=list
    )
    fail_with: ChainError | None = None
    #: the transaction lands, then the process dies before it sees the receipt
    die_after_send: bool = False

    def head(self) -> int:
        return self.height

    def timestamp(self) -> int:
        return self.now

    def leaf_request(self, request_id: bytes) -> LeafRequestView:
        return self.requests.get(request_id, LeafRequestView(LeafRequestStatus.NONE, ZERO, 0, 0, 0))

    def open(self, request_id: bytes, deadline: int = DEADLINE) -> None:
        self.requests[request_id] = LeafRequestView(LeafRequestStatus.OPEN, SYBIL, 10, deadline, 0)

    def close(self, request_id: bytes, status: LeafRequestStatus) -> None:
        old = self.leaf_request(request_id)
        self.requests[request_id] = LeafRequestView(
            status, SYBIL, 10, old.reveal_deadline, old.reveal_deadline + 600
        )

    def reveal_leaf(
        self,
        batch_id: int,
        index: int,
        job_id: int,
        input_q: Sequence[int],
        output_q: Sequence[int],
        proof: Sequence[bytes],
    ) -> TxResult:
        self.reveals.append(
            (batch_id, index, job_id, list(input_q), list(output_q), [bytes(p) for p in proof])
        )
        if self.fail_with is not None:
            raise self.fail_with
        key = batch_leaf_key(batch_id, index)
        v = self.leaf_request(key)
        assert v.status is LeafRequestStatus.OPEN, "revealed twice"
        assert self.now <= v.reveal_deadline, "revealed after the deadline"
        self.close(key, LeafRequestStatus.REVEALED)
        if self.die_after_send:
            raise Killed
        return TxResult("0x" + "dd" * 32, self.height)


class Killed(BaseException):
    """The process dies right after its reveal transaction was sent."""


def _store(db: Path) -> Store:
    return Store(open_db(db))


def _revealer(db: Path, chain: FakeLeafRequests, mode: DefendMode = DefendMode.CLAIMED) -> Revealer:
    return Revealer(
        _store(db), chain, RevealOptions(mode=mode, reserve_s=RESERVE, resend_after_blocks=3)
    )


def _leaf(store: Store, *, judged: JobState = JobState.MATCHED, claim: bool = True) -> bytes:
    """A fetched batch leaf we re-ran (matched by the witness) and claimed."""
    Store.record_batch(
        store.conn, batch_id=BATCH, model_id=MODEL, node=NODE, root=b"\x01" * 32, count=2,
        uri="http://n", challenge_deadline=900, commit_block=90,
    )  # fmt: skip
    batch = store.batch(BATCH)
    assert batch is not None
    leaf = Leaf(INDEX, JOB_ID, INPUT, OUTPUT, b"\x0a" * 32, b"\x0b" * 32, PATH)
    assert store.fetched_batch(batch, [(leaf, True)], {INDEX: "0x1,0x2"})
    if judged is JobState.MATCHED:
        store.transition(KEY, JobState.MATCHED, witness_diff=0)
    elif judged is JobState.MISMATCHED:
        store.transition(KEY, JobState.MISMATCHED, witness_diff=50)
    if claim:
        store.conn.execute(
            "INSERT INTO ch_leaf_claims(leaf_key, batch_id, leaf_index, model_id, vrf_proof, "
            "challenge_deadline, commit_block, state, planned_at, updated_at) "
            "VALUES (?, ?, ?, ?, '0x1,0x2', 900, 90, ?, 0, 0)",
            (KEY, str(BATCH), INDEX, MODEL, ClaimState.OPEN.value),
        )
    return KEY


def _request(r: Revealer, chain: FakeLeafRequests, deadline: int = DEADLINE) -> None:
    """Someone else's leaf request, recorded as the log follower does."""
    chain.open(KEY, deadline)
    RevealStore.requested(
        r.store.conn, request_id=KEY, node=NODE, requester=SYBIL, reveal_deadline=deadline,
        block=95,
    )  # fmt: skip


def _state(r: Revealer) -> RevealState:
    row = r.reveals.row(KEY)
    assert row is not None
    return row.state


EXPECTED = (BATCH, INDEX, JOB_ID, INPUT, OUTPUT, PATH)


def test_claimedLeaf_nodeSilent_revealedOnceAtTheMargin(tmp_path: Path) -> None:
    chain = FakeLeafRequests()
    r = _revealer(tmp_path / "c.sqlite", chain)
    _leaf(r.store)
    _request(r, chain)

    r.step()  # decided: ours; the node gets first go until DEADLINE - RESERVE
    assert _state(r) is RevealState.WAITING and chain.reveals == []
    chain.now = DEADLINE - RESERVE - 1
    r.step()
    assert chain.reveals == []

    chain.now = DEADLINE - RESERVE
    report = r.step()
    assert chain.reveals == [EXPECTED]  # the listing's data and Merkle path
    assert report.sent == 1 and report.won == 1
    assert _state(r) is RevealState.WON
    assert r.reveals.summary()["won"] == 1

    chain.now += 10
    r.step()
    assert len(chain.reveals) == 1  # nothing sent again


def test_nodeRevealsFirst_nothingSent(tmp_path: Path) -> None:
    chain = FakeLeafRequests()
    r = _revealer(tmp_path / "c.sqlite", chain)
    _leaf(r.store)
    _request(r, chain)
    r.step()
    assert _state(r) is RevealState.WAITING
    chain.now = DEADLINE - RESERVE - 5
    chain.close(KEY, LeafRequestStatus.REVEALED)  # the node answered
    report = r.step()
    chain.now = DEADLINE
    r.step()
    assert chain.reveals == []
    assert report.node_revealed == 1 and _state(r) is RevealState.NODE_REVEALED


def test_restartAfterSend_adoptedNotResent(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeLeafRequests(die_after_send=True)
    r = _revealer(db, chain)
    _leaf(r.store)
    _request(r, chain)
    r.step()
    chain.now = DEADLINE - RESERVE
    with pytest.raises(Killed):
        r.step()  # the reveal landed; the process died before its receipt
    assert _state(r) is RevealState.SENDING

    chain.die_after_send = False
    again = _revealer(db, chain)  # the restarted service, same database
    chain.height += 10
    report = again.step()
    assert len(chain.reveals) == 1  # adopted from the chain, not resent
    assert report.won == 1 and _state(again) is RevealState.WON


def test_restartAfterLostSend_resentAfterTheBlocks(tmp_path: Path) -> None:
    """A reveal journaled ``sending`` that never landed is sent again, after a wait."""
    db = tmp_path / "c.sqlite"
    chain = FakeLeafRequests()
    r = _revealer(db, chain)
    _leaf(r.store)
    _request(r, chain)
    r.step()
    r.reveals.transition(KEY, RevealState.SENDING, sent_block=chain.height)  # then it died
    chain.now = DEADLINE - RESERVE
    again = _revealer(db, chain)
    again.step()
    again.step()
    assert chain.reveals == []  # it may still land: wait
    chain.height += 3
    again.step()  # back to waiting
    again.step()  # sent again
    assert chain.reveals == [EXPECTED] and _state(again) is RevealState.WON


def test_unclaimedLeaf_notOurs_underClaimed_revealedUnderChecked(tmp_path: Path) -> None:
    chain = FakeLeafRequests()
    r = _revealer(tmp_path / "a.sqlite", chain)
    _leaf(r.store, claim=False)
    _request(r, chain)
    r.step()
    assert _state(r) is RevealState.NOT_OURS

    chain2 = FakeLeafRequests()
    c = _revealer(tmp_path / "b.sqlite", chain2, DefendMode.CHECKED)
    _leaf(c.store, claim=False)
    _request(c, chain2)
    chain2.now = DEADLINE - RESERVE
    c.step()
    assert chain2.reveals == [EXPECTED]


def test_wrongLeaf_neverRevealed(tmp_path: Path) -> None:
    """A leaf our re-run found wrong is not ours to keep: the request may burn it."""
    chain = FakeLeafRequests()
    r = _revealer(tmp_path / "c.sqlite", chain, DefendMode.CHECKED)
    _leaf(r.store, judged=JobState.MISMATCHED, claim=False)
    _request(r, chain)
    chain.now = DEADLINE - RESERVE
    r.step()
    assert chain.reveals == [] and _state(r) is RevealState.NOT_OURS


def test_reorgReMinesRequestWithEarlierDeadline_revealStillInTime(tmp_path: Path) -> None:
    """The A6-6 lesson for reveals: the deadline is the chain's, read every tick."""
    late = DEADLINE + 5000
    chain = FakeLeafRequests()
    r = _revealer(tmp_path / "c.sqlite", chain)
    _leaf(r.store)
    _request(r, chain, late)
    r.step()
    assert _state(r) is RevealState.WAITING
    RevealStore.forget_after(r.store.conn, 90)  # waiting rows stay
    chain.open(KEY, DEADLINE)  # re-mined with an earlier deadline
    for t in range(REQUESTED_AT, DEADLINE + 2, 20):
        chain.now = t
        r.step()
    assert chain.reveals == [EXPECTED] and _state(r) is RevealState.WON


def test_refusedReveal_lost_transientFailure_retried(tmp_path: Path) -> None:
    chain = FakeLeafRequests(fail_with=ChainError("connection reset"))
    r = _revealer(tmp_path / "c.sqlite", chain)
    _leaf(r.store)
    _request(r, chain)
    chain.now = DEADLINE - RESERVE
    r.step()
    assert _state(r) is RevealState.WAITING  # RPC trouble: next tick
    chain.fail_with = RevertError("revealLeaf failed", error="InvalidMerkleProof")
    report = r.step()
    assert report.lost == 1 and _state(r) is RevealState.LOST
    r.step()
    assert len(chain.reveals) == 2


def test_requestSettledUnrevealed_tooLate(tmp_path: Path) -> None:
    chain = FakeLeafRequests()
    r = _revealer(tmp_path / "c.sqlite", chain)
    _leaf(r.store)
    _request(r, chain)
    r.step()
    chain.close(KEY, LeafRequestStatus.SLASHED)
    report = r.step()
    assert report.too_late == 1 and _state(r) is RevealState.TOO_LATE


def test_service_recordsForeignLeafRequest_notItsOwn(tmp_path: Path) -> None:
    """The follower's handler records someone else's LeafRequested, never ours."""
    chain = FakeLeafRequests()
    r = _revealer(tmp_path / "c.sqlite", chain)
    _leaf(r.store)
    svc = Challenger(
        store=r.store,
        chain=chain,  # type: ignore[arg-type]
        policy=SamplingPolicy(secret=b"\x07" * 32, default_rate=1.0),
        reexecutor_for=lambda m: None,
        options=Options(),
        revealer=r,
    )

    def event(requester: str) -> ChainEvent:
        return ChainEvent(
            "LeafRequested", "0xdm", 95, 0, "0x" + "ee" * 32,
            {"requestId": "0x" + KEY.hex(), "batchId": BATCH, "index": INDEX, "node": NODE,
             "requester": requester, "bond": 10, "revealDeadline": DEADLINE},
        )  # fmt: skip

    svc.handle_events([event(ME)], r.store.conn)
    assert r.reveals.row(KEY) is None
    svc.handle_events([event(SYBIL)], r.store.conn)
    row = r.reveals.row(KEY)
    assert row is not None and row.reveal_deadline == DEADLINE and row.requester == SYBIL


_EVENTS = st.lists(
    st.sampled_from(["tick", "advance", "node_reveals", "crash_send", "blocks"]), max_size=25
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=_EVENTS)
def test_property_neverTwoReveals_neverAfterTheDeadline_endsClosed(
    tmp_path_factory: pytest.TempPathFactory, script: list[str]
) -> None:
    """Whatever the order of ticks, node reveals, crashes after a send and new blocks (the
    service ticking more often than the reserve): at most one reveal is sent, never after the
    deadline (the fake asserts both), and the leaf ends revealed, by us or by the node."""
    db = tmp_path_factory.mktemp("p") / "c.sqlite"
    chain = FakeLeafRequests()
    r = _revealer(db, chain)
    _leaf(r.store)
    _request(r, chain)
    for what in script:
        if what == "advance":  # the service ticks more often than the reserve
            chain.now = min(chain.now + RESERVE - 10, DEADLINE + 10)
            r.step()
        elif what == "node_reveals" and chain.now <= DEADLINE:
            if chain.leaf_request(KEY).status is LeafRequestStatus.OPEN:
                chain.close(KEY, LeafRequestStatus.REVEALED)
        elif what == "crash_send":
            chain.die_after_send = True
            try:
                r.step()
            except Killed:
                r = _revealer(db, chain)  # restarted
            chain.die_after_send = False
        elif what == "blocks":
            chain.height += 3
        else:
            r.step()
    chain.now = max(chain.now, DEADLINE - RESERVE)
    for _ in range(3):
        chain.height += 3
        r.step()
    assert len(chain.reveals) <= 1
    assert _state(r) in (RevealState.WON, RevealState.NODE_REVEALED)
    assert _state(r) not in ACTIVE
