"""The challenger's state machine against an in-memory chain: disputes, settlement, crashes."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from challenger.chain_io import MAX_LEAVES_PER_REQUEST, DisputeView, LeafRequestView
from challenger.sampling import SamplingPolicy
from challenger.service import Challenger, Options
from challenger.store import JobState, Store
from spotcheck.chain import DisputeStatus, LeafRequestStatus, RegisteredModel, TxResult
from spotcheck.encoding import batch_leaf_key, onchain_job_key, output_hash
from spotcheck.errors import ChainError
from spotcheck.follower import open_db
from spotcheck.kit.logs import JsonFormatter, KeyValueFormatter

MODEL = b"\x42" * 32
ME = "0x" + "cc" * 20
OTHER = "0x" + "dd" * 20
BOND = 10
TAU = 4
PROOF_WINDOW = 100


class Crash(BaseException):
    """A kill -9 at a chosen call (BaseException: nothing in the service may swallow it)."""


@dataclass
class FakeChain:
    """Just enough DisputeManager semantics: one dispute and one leaf request per key,
    deadlines, credits (batches: ``batch_deadlines`` by batch id)."""

    now: int = 1000
    height: int = 100
    disputes: dict[bytes, DisputeView] = field(default_factory=dict)
    leaf_requests: dict[bytes, LeafRequestView] = field(default_factory=dict)
    batch_deadlines: dict[int, int] = field(default_factory=dict)
    #: The root each batch id holds on chain (``requestLeaf`` reverts RootMismatch otherwise).
    batch_roots: dict[int, bytes] = field(default_factory=dict)
    #: (batch id, index, root) of every requestLeaf sent.
    leaf_request_roots: list[tuple[int, int, bytes]] = field(default_factory=list)
    #: (batch id, indices) of every requestLeaves transaction mined.
    leaf_request_txs: list[tuple[int, list[int]]] = field(default_factory=list)
    reveal_proofs: dict[str, list[bytes]] = field(default_factory=dict)
    in_lo: int = -(2**20)
    in_hi: int = 2**20
    credit: int = 0
    withdrawn: int = 0
    sends: list[str] = field(default_factory=list)
    #: (method name, occurrence, before|after) -> raise Crash there
    crash_at: tuple[str, int, str] | None = None
    calls: dict[str, int] = field(default_factory=dict)
    fail_sends: int = 0
    disputed_hashes: dict[bytes, bytes] = field(default_factory=dict)
    #: Transactions back in the mempool (a reorg dropped their block).
    pending_txs: set[str] = field(default_factory=set)
    dispute_proofs: dict[bytes, tuple[int, bytes, list[bytes]]] = field(default_factory=dict)

    def _hook(self, name: str, when: str) -> None:
        if self.crash_at and self.crash_at[0] == name and self.crash_at[2] == when:
            done = self.calls.get(name, 0) - (1 if when == "after" else 0)
            if done == self.crash_at[1]:
                self.crash_at = None
                raise Crash(f"{when} {name}")

    def _send(self, name: str) -> None:
        self._hook(name, "before")
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.fail_sends:
            self.fail_sends -= 1
            raise ChainError(f"{name}: RPC down")

    @property
    def me(self) -> str:
        return ME

    def head(self) -> int:
        return self.height

    def block_hash(self, number: int) -> bytes:
        return number.to_bytes(32, "big")

    def timestamp(self) -> int:
        return self.now

    def model(self, model_id: bytes) -> RegisteredModel:
        return RegisteredModel(
            2,
            1,
            8,
            8,
            TAU,
            challenger_bond=BOND,
            slash_amount=100,
            bounty_bps=2500,
            in_lo=self.in_lo,
            in_hi=self.in_hi,
            model_id=model_id,
        )

    def leaf_request(self, request_id: bytes) -> LeafRequestView:
        return self.leaf_requests.get(
            request_id, LeafRequestView(LeafRequestStatus.NONE, "0x" + "00" * 20, 0, 0, 0)
        )

    def reveal_proof(self, tx_hash: str) -> list[bytes] | None:
        return self.reveal_proofs.get(tx_hash)

    def tx_pending(self, tx_hash: str) -> bool:
        return tx_hash in self.pending_txs

    def request_leaf(self, batch_id: int, index: int, root: bytes, bond: int) -> TxResult:
        self._send("request_leaf")
        key = batch_leaf_key(batch_id, index)
        stored = self.batch_roots.get(batch_id)
        if stored is not None and bytes(root) != stored:
            raise ChainError(
                f"requestLeaf failed: RootMismatch({batch_id}, 0x{bytes(root).hex()}, "
                f"0x{stored.hex()})"
            )
        if key in self.leaf_requests:
            raise ChainError("LeafRequestExists")
        if self.now >= self.batch_deadlines.get(batch_id, 0):
            raise ChainError("ChallengeWindowClosed")
        self.leaf_requests[key] = LeafRequestView(
            LeafRequestStatus.OPEN, ME, bond, self.now + PROOF_WINDOW, 0
        )
        self.leaf_request_roots.append((batch_id, index, bytes(root)))
        self.sends.append(f"request {batch_id}/{index}")
        self._hook("request_leaf", "after")
        return TxResult(f"0xreq{batch_id}-{index}", self.height)

    def request_leaves(
        self, batch_id: int, indices: Sequence[int], root: bytes, bond_each: int
    ) -> TxResult:
        """``requestLeaves``: one transaction; a leaf already requested (or repeated) is
        skipped; the batch rules revert the whole call."""
        self._send("request_leaves")
        stored = self.batch_roots.get(batch_id)
        if stored is not None and bytes(root) != stored:
            raise ChainError(
                f"requestLeaves failed: RootMismatch({batch_id}, 0x{bytes(root).hex()}, "
                f"0x{stored.hex()})"
            )
        if not 1 <= len(indices) <= MAX_LEAVES_PER_REQUEST:
            raise ChainError(f"requestLeaves failed: TooManyLeaves({len(indices)})")
        if self.now >= self.batch_deadlines.get(batch_id, 0):
            raise ChainError("ChallengeWindowClosed")
        tx = f"0xreqs{batch_id}-{len(self.leaf_request_txs)}"
        self.leaf_request_txs.append((batch_id, list(indices)))
        for index in indices:
            key = batch_leaf_key(batch_id, index)
            if key in self.leaf_requests or key in self.disputes:
                continue
            self.leaf_requests[key] = LeafRequestView(
                LeafRequestStatus.OPEN, ME, bond_each, self.now + PROOF_WINDOW, 0
            )
            self.leaf_request_roots.append((batch_id, index, bytes(root)))
            self.sends.append(f"request {batch_id}/{index}")
        self._hook("request_leaves", "after")
        return TxResult(tx, self.height)

    def reveal(self, batch_id: int, index: int, dispute_window: int = 100) -> int:
        """The node reveals the leaf; returns its dispute deadline."""
        key = batch_leaf_key(batch_id, index)
        r = self.leaf_requests[key]
        assert r.status is LeafRequestStatus.OPEN and self.now <= r.reveal_deadline
        deadline = self.now + dispute_window
        self.leaf_requests[key] = LeafRequestView(
            LeafRequestStatus.REVEALED, r.requester, r.bond, r.reveal_deadline, deadline
        )
        self.credit_node = getattr(self, "credit_node", 0) + r.bond
        return deadline

    def settle_leaf_request(self, request_id: bytes) -> TxResult:
        self._send("settle_leaf_request")
        r = self.leaf_requests[request_id]
        if r.status is not LeafRequestStatus.OPEN or self.now <= r.reveal_deadline:
            raise ChainError("cannot settle the leaf request")
        self.leaf_requests[request_id] = LeafRequestView(
            LeafRequestStatus.SLASHED, r.requester, r.bond, r.reveal_deadline, 0
        )
        if r.requester == ME:
            self.credit += r.bond + 25
        self.sends.append("settle_leaf")
        self._hook("settle_leaf_request", "after")
        return TxResult("0xsettleleaf", self.height)

    def dispute(self, dispute_id: bytes) -> DisputeView:
        return self.disputes.get(
            dispute_id, DisputeView(DisputeStatus.NONE, "0x" + "00" * 20, 0, 0)
        )

    def bond_at_risk(self) -> int:
        """Open disputes and open leaf requests of ours (as ``bondAtRisk``)."""
        return sum(
            d.bond
            for d in self.disputes.values()
            if d.status is DisputeStatus.OPEN and d.challenger == ME
        ) + sum(
            r.bond
            for r in self.leaf_requests.values()
            if r.status is LeafRequestStatus.OPEN and r.requester == ME
        )

    def credits(self) -> int:
        return self.credit

    def balance(self) -> int:
        return 10**6

    def request_input(
        self, job_id: int, before_block: int | None = None
    ) -> tuple[bytes, list[int]] | None:
        return None

    def open_dispute(self, job_id: int, output_hash: bytes, bond: int) -> TxResult:
        self._send("open_dispute")
        key = onchain_job_key(job_id)
        if key in self.disputes:
            raise ChainError("DisputeExists")
        self.disputed_hashes[key] = output_hash
        self.disputes[key] = DisputeView(DisputeStatus.OPEN, ME, bond, self.now + PROOF_WINDOW)
        self.sends.append(f"open {job_id}")
        self._hook("open_dispute", "after")
        return TxResult("0xtx", self.height)

    def open_batch_dispute(
        self,
        batch_id: int,
        index: int,
        job_id: int,
        input_hash: bytes,
        output_hash: bytes,
        proof: Sequence[bytes],
        bond: int,
    ) -> TxResult:
        self._send("open_batch_dispute")
        key = batch_leaf_key(batch_id, index)
        if key in self.disputes:
            raise ChainError("DisputeExists")
        r = self.leaf_requests.get(key)
        if r is not None and r.status is LeafRequestStatus.OPEN:
            raise ChainError("LeafRequestOpen")
        if r is not None and r.status is LeafRequestStatus.SLASHED:
            raise ChainError("NotDisputable")  # DisputeManager._disputableBatch
        deadline = self.batch_deadlines.get(batch_id, 0)
        if r is not None and r.status is LeafRequestStatus.REVEALED:
            deadline = r.dispute_deadline
        if self.now > deadline:
            raise ChainError("ChallengeWindowClosed")
        self.disputed_hashes[key] = output_hash
        self.dispute_proofs[key] = (job_id, input_hash, list(proof))
        self.disputes[key] = DisputeView(DisputeStatus.OPEN, ME, bond, self.now + PROOF_WINDOW)
        self.sends.append(f"open batch {batch_id}/{index}")
        self._hook("open_batch_dispute", "after")
        return TxResult("0xtxb", self.height)

    def settle(self, dispute_id: bytes) -> TxResult:
        self._send("settle")
        d = self.disputes[dispute_id]
        if d.status is not DisputeStatus.OPEN or self.now <= d.proof_deadline:
            raise ChainError("cannot settle")
        self.disputes[dispute_id] = DisputeView(
            DisputeStatus.SLASHED, d.challenger, d.bond, d.proof_deadline
        )
        self.credit += d.bond + 25
        self.sends.append("settle")
        self._hook("settle", "after")
        return TxResult("0xsettle", self.height)

    def withdraw_credits(self) -> TxResult:
        self._send("withdraw_credits")
        self.withdrawn += self.credit
        self.credit = 0
        self.sends.append("withdraw")
        self._hook("withdraw_credits", "after")
        return TxResult("0xw", self.height)


@dataclass
class FakeReexec:
    input_len: int = 2
    output_len: int = 1

    def screen_output(self, input_q: Sequence[int]) -> list[int]:
        return [sum(input_q)]

    def witness_output(self, input_q: Sequence[int]) -> list[int]:
        return [sum(input_q)]


def _challenger(db: Path, chain: FakeChain, **opts: object) -> Challenger:
    options = Options(max_bond_at_risk=int(opts.pop("cap", 10**6)), **opts)  # type: ignore[arg-type]
    return Challenger(
        store=Store(open_db(db)),
        chain=chain,
        policy=SamplingPolicy(secret=b"\x07" * 32, default_rate=1.0),
        reexecutor_for=lambda _m: FakeReexec(),
        options=options,
    )


def _commit(conn: sqlite3.Connection, job_id: int, output: int, block: int = 10) -> None:
    Store.record_request(conn, job_id, MODEL, [job_id, 1])
    Store.record_onchain_commit(
        conn,
        job_key=onchain_job_key(job_id),
        job_id=job_id,
        node="0xnode",
        output_q=[output],
        output_hash=output_hash([output]),
        challenge_deadline=2000,
        commit_block=block,
    )


def _run_to_end(db: Path, chain: FakeChain, **opts: object) -> None:
    """Tick until quiet, moving time past the proof window once, restarting after crashes."""
    for _ in range(12):
        try:
            _challenger(db, chain, **opts).tick()
            chain.now += 60
        except Crash:
            continue  # the process died: a fresh one starts from the same database


def _populate(db: Path) -> None:
    conn = open_db(db)
    Store(conn)
    for job_id in range(1, 7):
        honest = job_id + 1
        _commit(conn, job_id, honest if job_id % 2 else honest + TAU + 1)  # even jobs cheat
    _commit(conn, 7, 8 + TAU)  # at the tolerance edge: honest
    conn.close()


def test_honestAndEdgeJobs_matched_cheatersDisputedSettledAndCreditsWithdrawn(tmp_path) -> None:
    db = tmp_path / "c.sqlite"
    _populate(db)
    chain = FakeChain()
    _run_to_end(db, chain)
    store = Store(open_db(db))
    assert store.state_counts() == {"matched": 4, "won": 3}
    assert sorted(chain.disputes) == sorted(onchain_job_key(j) for j in (2, 4, 6))
    assert chain.withdrawn == 3 * (BOND + 25) and chain.credit == 0


def test_dryRun_reportsButSendsNothing(tmp_path) -> None:
    db = tmp_path / "c.sqlite"
    _populate(db)
    chain = FakeChain()
    _run_to_end(db, chain, dry_run=True)
    assert chain.sends == []
    assert Store(open_db(db)).state_counts() == {"matched": 4, "reported": 3}


def test_bondCap_defersDisputesBeyondIt_untilBondsReturn(tmp_path) -> None:
    db = tmp_path / "c.sqlite"
    _populate(db)
    chain = FakeChain()
    ch = _challenger(db, chain, cap=BOND)  # room for one open dispute at a time
    report = ch.tick()
    assert report.disputed == 1 and report.deferred_by_cap == 2
    assert chain.bond_at_risk() == BOND
    _run_to_end(db, chain, cap=BOND)
    assert Store(open_db(db)).state_counts() == {"matched": 4, "won": 3}


def test_disputeOpened_isLogged_withItsJobNodeAndTransaction(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12: the ids went in ``extra=`` and the formatter printed the message alone."""
    db = tmp_path / "c.sqlite"
    _populate(db)
    with caplog.at_level(logging.WARNING, logger="challenger.service"):
        _challenger(db, FakeChain()).tick()
    opened = [r for r in caplog.records if r.getMessage() == "DISPUTE OPENED"]
    assert sorted(getattr(r, "job_id", None) for r in opened) == [2, 4, 6]
    (record,) = [r for r in opened if getattr(r, "job_id", None) == 2]
    line = KeyValueFormatter().format(record)
    key = "0x" + onchain_job_key(2).hex()
    assert f"DISPUTE OPENED job_key={key} kind=onchain ref=2 job_id=2 node=0xnode tx=0xtx" in line
    fields = json.loads(JsonFormatter().format(record))
    assert (fields["job_id"], fields["node"], fields["tx"]) == (2, "0xnode", "0xtx")


def test_existingForeignDispute_isPreempted_notDuplicated(tmp_path) -> None:
    db = tmp_path / "c.sqlite"
    _populate(db)
    chain = FakeChain()
    chain.disputes[onchain_job_key(2)] = DisputeView(DisputeStatus.OPEN, OTHER, BOND, 5000)
    _run_to_end(db, chain)
    assert Store(open_db(db)).job(onchain_job_key(2)).state is JobState.PREEMPTED  # type: ignore[union-attr]
    assert chain.sends.count("open 2") == 0


def test_windowClosedBeforeDispute_isMissed(tmp_path) -> None:
    db = tmp_path / "c.sqlite"
    _populate(db)
    chain = FakeChain(now=2001)
    _run_to_end(db, chain)
    assert chain.sends == []
    assert Store(open_db(db)).state_counts() == {"missed": 7}


def test_failedDisputeSend_isRetriedNextTick(tmp_path) -> None:
    db = tmp_path / "c.sqlite"
    _populate(db)
    chain = FakeChain(fail_sends=1)
    _run_to_end(db, chain)
    assert Store(open_db(db)).state_counts() == {"matched": 4, "won": 3}
    assert sorted(s for s in chain.sends if s.startswith("open")) == ["open 2", "open 4", "open 6"]


def test_defendedDispute_isLost(tmp_path) -> None:
    db = tmp_path / "c.sqlite"
    _populate(db)
    chain = FakeChain()
    ch = _challenger(db, chain)
    ch.tick()
    key = onchain_job_key(2)
    d = chain.disputes[key]
    chain.disputes[key] = DisputeView(
        DisputeStatus.DEFENDED, d.challenger, d.bond, d.proof_deadline
    )
    _run_to_end(db, chain)
    assert Store(open_db(db)).job(key).state is JobState.LOST  # type: ignore[union-attr]


#: Every transaction of the reference run (3 disputes, 3 settlements, 1 withdrawal), killed
#: just before it is sent or just after it landed (before the service recorded it).
CRASH_POINTS = [
    (name, occurrence, when)
    for name, count in (("open_dispute", 3), ("settle", 3), ("withdraw_credits", 1))
    for occurrence in range(count)
    for when in ("before", "after")
]


@pytest.mark.parametrize("crash", CRASH_POINTS, ids=lambda c: f"{c[2]}-{c[0]}-{c[1]}")
def test_killedAtAnyPoint_endsInSameChainStateAsUninterruptedRun(
    tmp_path_factory: pytest.TempPathFactory, crash: tuple[str, int, str]
) -> None:
    ref_db = tmp_path_factory.mktemp("ref") / "c.sqlite"
    _populate(ref_db)
    reference = FakeChain()
    _run_to_end(ref_db, reference)

    db = tmp_path_factory.mktemp("crash") / "c.sqlite"
    _populate(db)
    chain = FakeChain(crash_at=crash)
    _run_to_end(db, chain)
    assert chain.crash_at is None, "the crash point was reached"
    assert chain.disputes == reference.disputes  # no duplicate, no missing dispute
    assert (chain.withdrawn, chain.credit) == (reference.withdrawn, 0)  # no missed settlement
    assert Store(open_db(db)).state_counts() == {"matched": 4, "won": 3}


def _dispute_then_reorg(db: Path, chain: FakeChain) -> bytes:
    """One tick disputes the cheaters (2, 4, 6); then a reorg drops our dispute on job 2."""
    _populate(db)
    _challenger(db, chain).tick()
    key = onchain_job_key(2)
    assert Store(open_db(db)).job(key).state is JobState.DISPUTE_OPEN  # type: ignore[union-attr]
    del chain.disputes[key]
    return key


def test_reorgDropsOurOpenDispute_disputedAgainOnce_andWon(tmp_path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    key = _dispute_then_reorg(db, chain)
    _challenger(db, chain).tick()  # resolve: no dispute on chain -> mismatched
    assert Store(open_db(db)).job(key).state is JobState.MISMATCHED  # type: ignore[union-attr]
    _run_to_end(db, chain)
    assert Store(open_db(db)).job(key).state is JobState.WON  # type: ignore[union-attr]
    assert chain.sends.count("open 2") == 2


def test_reorgDropsOurDispute_transactionPending_notSentAgain(tmp_path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    key = _dispute_then_reorg(db, chain)
    chain.pending_txs.add("0xtx")  # back in the mempool
    for _ in range(3):
        _challenger(db, chain).tick()
    assert Store(open_db(db)).job(key).state is JobState.DISPUTE_OPEN  # type: ignore[union-attr]
    assert chain.sends.count("open 2") == 1
    # It is mined again: followed as before, never sent twice.
    chain.pending_txs.clear()
    chain.disputes[key] = DisputeView(DisputeStatus.OPEN, ME, BOND, chain.now + PROOF_WINDOW)
    _run_to_end(db, chain)
    assert Store(open_db(db)).job(key).state is JobState.WON  # type: ignore[union-attr]
    assert chain.sends.count("open 2") == 1


def test_reorgDropsOurDispute_windowClosed_isMissed(tmp_path) -> None:
    db = tmp_path / "c.sqlite"
    chain = FakeChain()
    key = _dispute_then_reorg(db, chain)
    chain.now = 2001  # the job's challenge deadline (2000) has passed
    for _ in range(2):
        _challenger(db, chain).tick()
    assert Store(open_db(db)).job(key).state is JobState.MISSED  # type: ignore[union-attr]
    assert chain.sends.count("open 2") == 1
