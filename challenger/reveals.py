"""Revealing the requested leaves this challenger claimed or found correct (audit A6-4).

Anyone may ``requestLeaf`` a batch leaf. A request nobody reveals by its reveal deadline makes
the leaf invalid (``settleLeafRequest``), and ``forfeitLeaf`` then burns every claim on it,
however correct the leaf: a node offline, or colluding with the requester, would cost every
diligent claimant its collateral. ``revealLeaf`` is open to anyone and needs no proof, and
the challenger holds the leaf's data from the listing it fetched (job id, input, output and
Merkle path), so it reveals the leaf itself, unless the node (paid the request's bond for
revealing) does so first.

One :meth:`Revealer.step` per tick, after the defences:

- **record**: the log follower records every ``LeafRequested`` (not our own) on a leaf the
  store knows with its listing data (:meth:`RevealStore.requested`), in its checkpoint
  transaction; a reorg forgets the undecided rows of the replaced blocks.
- **decide**: a ``watching`` row is ours by the same rule as a dispute's defence
  (``challenger.defence.why_not_ours``: ``defend = claimed`` / ``checked``); else
  ``not_ours``. A leaf not judged yet stays ``watching``.
- **wait**: the node gets first go until ``revealDeadline - reserve_s`` (read from the chain
  every tick: a reorg can re-mine the request with an earlier deadline, audit A6-6).
- **send**: ``waiting`` -> ``sending`` (journaled with the head block *before* the
  transaction) -> ``won`` when ``revealLeaf`` lands. A ``sending`` row found after a restart
  is adopted from the chain: revealed -> ``won`` (ours or the node's: the leaf is safe either
  way), still open after ``resend_after_blocks`` -> sent again; so a reveal is never sent twice
  while the first may still land.
- **give up**: revealed by anyone else -> ``node_revealed``; the reveal deadline passed or the
  request settled before ours landed -> ``too_late`` (an error: the claim's collateral is
  lost); our reveal refused (the Merkle path or data) -> ``lost`` (an error).
"""

from __future__ import annotations

import enum
import logging
import sqlite3
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from challenger.chain_io import LeafRequestView
from challenger.defence import DefenceStore, DefendMode, why_not_ours
from challenger.store import JobState, Store
from spotcheck.chain import LeafRequestStatus, TxResult
from spotcheck.errors import ChainError, revert_name
from spotcheck.kit.db import IllegalTransition, move

log = logging.getLogger(__name__)


class RevealState(enum.StrEnum):
    WATCHING = "watching"
    NOT_OURS = "not_ours"
    WAITING = "waiting"
    SENDING = "sending"
    WON = "won"
    LOST = "lost"
    NODE_REVEALED = "node_revealed"
    TOO_LATE = "too_late"


_S = RevealState
#: to -> the states it may be reached from.
TRANSITIONS: dict[RevealState, frozenset[RevealState]] = {
    _S.NOT_OURS: frozenset({_S.WATCHING}),
    _S.WAITING: frozenset({_S.WATCHING, _S.SENDING}),
    _S.SENDING: frozenset({_S.WAITING}),
    _S.WON: frozenset({_S.SENDING}),
    _S.LOST: frozenset({_S.SENDING}),
    _S.NODE_REVEALED: frozenset({_S.WATCHING, _S.WAITING, _S.SENDING}),
    _S.TOO_LATE: frozenset({_S.WATCHING, _S.WAITING, _S.SENDING}),
}
ACTIVE = (_S.WATCHING, _S.WAITING, _S.SENDING)
#: Reverts that say our leaf data or path is wrong: sending again cannot help.
_REFUSED = frozenset({"InvalidMerkleProof", "WrongInputLength", "WrongOutputLength"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ch_leaf_reveals (
    request_id      BLOB PRIMARY KEY,   -- = the leaf's job key in ch_jobs
    node            TEXT NOT NULL,
    requester       TEXT NOT NULL,
    reveal_deadline INTEGER NOT NULL,   -- as the chain last said
    block           INTEGER NOT NULL,   -- LeafRequested's block
    state           TEXT NOT NULL,
    reason          TEXT,
    sent_block      INTEGER,
    tx_hash         TEXT,
    updated_at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ch_leaf_reveals_state ON ch_leaf_reveals(state);
"""


@dataclass(frozen=True)
class RevealRow:
    request_id: bytes
    node: str
    requester: str
    reveal_deadline: int
    block: int
    state: RevealState
    reason: str | None
    sent_block: int | None
    tx_hash: str | None


_COLS = "request_id, node, requester, reveal_deadline, block, state, reason, sent_block, tx_hash"


def _row(r: sqlite3.Row) -> RevealRow:
    return RevealRow(
        request_id=bytes(r["request_id"]),
        node=r["node"],
        requester=r["requester"],
        reveal_deadline=int(r["reveal_deadline"]),
        block=int(r["block"]),
        state=RevealState(r["state"]),
        reason=r["reason"],
        sent_block=None if r["sent_block"] is None else int(r["sent_block"]),
        tx_hash=r["tx_hash"],
    )


class RevealStore:
    """The ``ch_leaf_reveals`` table of a :class:`Store` (same connection)."""

    def __init__(self, store: Store) -> None:
        self.conn = store.conn
        self.conn.executescript(_SCHEMA)

    @staticmethod
    def requested(
        conn: sqlite3.Connection,
        *,
        request_id: bytes,
        node: str,
        requester: str,
        reveal_deadline: int,
        block: int,
    ) -> bool:
        """Record someone else's leaf request on a leaf we hold the listing data of."""
        known = conn.execute(
            "SELECT 1 FROM ch_jobs WHERE job_key = ? AND state != ? AND merkle_proof IS NOT NULL",
            (request_id, JobState.SKIPPED.value),
        ).fetchone()
        if known is None:
            return False
        cur = conn.execute(
            "INSERT OR IGNORE INTO ch_leaf_reveals(request_id, node, requester, reveal_deadline, "
            "block, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (request_id, node, requester, reveal_deadline, block, _S.WATCHING.value, time.time()),
        )
        return bool(cur.rowcount)

    @staticmethod
    def forget_after(conn: sqlite3.Connection, fork: int) -> int:
        """A reorg replaced the blocks after ``fork``: undecided rows they recorded go."""
        cur = conn.execute(
            "DELETE FROM ch_leaf_reveals WHERE block > ? AND state = ?", (fork, _S.WATCHING.value)
        )
        return cur.rowcount

    def rows(self, *states: RevealState) -> list[RevealRow]:
        marks = ",".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT {_COLS} FROM ch_leaf_reveals WHERE state IN ({marks}) "
            "ORDER BY reveal_deadline",
            [s.value for s in states],
        ).fetchall()
        return [_row(r) for r in rows]

    def row(self, request_id: bytes) -> RevealRow | None:
        r = self.conn.execute(
            f"SELECT {_COLS} FROM ch_leaf_reveals WHERE request_id = ?", (request_id,)
        ).fetchone()
        return None if r is None else _row(r)

    def set_deadline(self, request_id: bytes, reveal_deadline: int) -> None:
        self.conn.execute(
            "UPDATE ch_leaf_reveals SET reveal_deadline = ?, updated_at = ? WHERE request_id = ?",
            (reveal_deadline, time.time(), request_id),
        )

    def summary(self) -> dict[str, int]:
        counts = dict(
            self.conn.execute(
                "SELECT state, COUNT(*) FROM ch_leaf_reveals GROUP BY state"
            ).fetchall()
        )

        def total(*states: RevealState) -> int:
            return sum(int(counts.get(s.value, 0)) for s in states)

        return {
            "sent": total(_S.WON, _S.LOST),
            "won": total(_S.WON),
            "lost": total(_S.LOST),
            "too_late": total(_S.TOO_LATE),
            "node_revealed": total(_S.NODE_REVEALED),
            "pending": total(_S.WAITING, _S.SENDING),
            "watching": total(_S.WATCHING),
        }

    def transition(self, request_id: bytes, to: RevealState, **fields: Any) -> None:
        unknown = set(fields) - {"reason", "sent_block", "tx_hash"}
        if unknown:
            raise ValueError(f"unknown leaf reveal field(s) {sorted(unknown)}")
        move(
            self.conn,
            "ch_leaf_reveals",
            ("request_id", request_id),
            [s.value for s in TRANSITIONS[to]],
            to.value,
            state_column="state",
            **fields,
        )


class RevealPort(Protocol):
    """What the revealer needs from the chain (``challenger.chain_io.ApeChain`` has it)."""

    @property
    def me(self) -> str: ...

    def head(self) -> int: ...

    def timestamp(self) -> int: ...

    def leaf_request(self, request_id: bytes) -> LeafRequestView: ...

    def reveal_leaf(
        self,
        batch_id: int,
        index: int,
        job_id: int,
        input_q: Sequence[int],
        output_q: Sequence[int],
        proof: Sequence[bytes],
    ) -> TxResult: ...


@dataclass(frozen=True)
class RevealOptions:
    mode: DefendMode = DefendMode.CLAIMED
    #: Chain seconds before the reveal deadline at which we reveal if the node has not: a few
    #: blocks for the transaction (a reveal needs no proof).
    reserve_s: int = 60
    #: Blocks after a send before a reveal still absent on chain is sent again.
    resend_after_blocks: int = 5


@dataclass
class RevealReport:
    decided: int = 0
    sent: int = 0
    won: int = 0
    lost: int = 0
    too_late: int = 0
    node_revealed: int = 0


@dataclass(frozen=True)
class _LeafData:
    batch_id: int
    index: int
    job_id: int
    input_q: list[int]
    output_q: list[int]
    proof: list[bytes]


class Revealer:
    """The leaf reveal state machine over a :class:`RevealPort` and the service's store."""

    def __init__(self, store: Store, chain: RevealPort, options: RevealOptions) -> None:
        if options.mode is DefendMode.NEVER:
            raise ValueError("a Revealer with mode 'never' reveals nothing: build none")
        self.reveals = RevealStore(store)
        self.defences = DefenceStore(store)
        self.store = store
        self.chain = chain
        self.options = options

    def step(self) -> RevealReport:
        report = RevealReport()
        rows = self.reveals.rows(*ACTIVE)
        if not rows:
            return report
        now = self.chain.timestamp()
        for row in rows:
            v = self.chain.leaf_request(row.request_id)
            if v.status is LeafRequestStatus.OPEN and v.reveal_deadline != row.reveal_deadline:
                # A reorg re-mined the request with another deadline: the chain's counts.
                self.reveals.set_deadline(row.request_id, v.reveal_deadline)
                row = self.reveals.row(row.request_id) or row
            if self._closed(row, v, now, report):
                continue
            if row.state is _S.WATCHING:
                self._decide(row, report)
                row = self.reveals.row(row.request_id) or row
            if row.state is _S.WAITING and now >= row.reveal_deadline - self.options.reserve_s:
                self._send(row, report)
            elif row.state is _S.SENDING:
                self._adopt_sending(row)
        return report

    # -- closed on chain --------------------------------------------------------------------

    def _closed(self, row: RevealRow, v: LeafRequestView, now: int, report: RevealReport) -> bool:
        """Ends the row if the request is over or out of time; True if it did (or must wait)."""
        over = v.status in (LeafRequestStatus.REVEALED, LeafRequestStatus.SLASHED)
        if row.state is _S.WATCHING and (over or now > row.reveal_deadline):
            why = why_not_ours(self.defences, self.options.mode, row.request_id)
            if why is not None:  # never ours: nothing lost on our side
                with suppress(IllegalTransition):
                    self.reveals.transition(row.request_id, _S.NOT_OURS, reason=why)
                return True
        if v.status is LeafRequestStatus.REVEALED:
            if row.state is _S.SENDING:
                self._move(row, _S.WON, report, "revealed (adopted: our reveal or the node's)")
            else:
                self._move(row, _S.NODE_REVEALED, report, "revealed by the node (or another)")
            return True
        if v.status is LeafRequestStatus.SLASHED:
            self._move(row, _S.TOO_LATE, report, "settled unrevealed before our reveal landed")
            return True
        if now > row.reveal_deadline:
            why = "reveal deadline passed" if v.status is LeafRequestStatus.OPEN else "request gone"
            self._move(row, _S.TOO_LATE, report, why)
            return True
        return v.status is LeafRequestStatus.NONE  # a reorg dropped it: wait for the replay

    # -- decide -----------------------------------------------------------------------------

    def _decide(self, row: RevealRow, report: RevealReport) -> None:
        if self.defences.judged_correct(row.request_id) is None:
            return  # not judged yet
        why = why_not_ours(self.defences, self.options.mode, row.request_id)
        with suppress(IllegalTransition):
            if why is not None:
                self.reveals.transition(row.request_id, _S.NOT_OURS, reason=why)
                return
            self.reveals.transition(row.request_id, _S.WAITING)
            report.decided += 1
            log.warning(
                "leaf request on a leaf we found correct (requester %s): revealing it ourselves "
                "at %d unless the node does first (reveal deadline %d)",
                row.requester,
                row.reveal_deadline - self.options.reserve_s,
                row.reveal_deadline,
                extra=_log(row),
            )

    # -- send -------------------------------------------------------------------------------

    def _leaf(self, request_id: bytes) -> _LeafData | None:
        job = self.store.job(request_id)
        if (
            job is None
            or job.leaf_index is None
            or job.input_q is None
            or job.output_q is None
            or job.merkle_proof is None
        ):
            return None
        return _LeafData(
            job.ref, job.leaf_index, job.job_id, job.input_q, job.output_q, job.merkle_proof
        )

    def _send(self, row: RevealRow, report: RevealReport) -> None:
        leaf = self._leaf(row.request_id)
        if leaf is None:
            log.error("cannot reveal: the leaf's listing data is unknown", extra=_log(row))
            return
        self.reveals.transition(row.request_id, _S.SENDING, sent_block=self.chain.head())
        try:
            tx = self.chain.reveal_leaf(
                leaf.batch_id, leaf.index, leaf.job_id, leaf.input_q, leaf.output_q, leaf.proof
            )
        except ChainError as err:
            self._send_failed(row, err, report)
            return
        with suppress(IllegalTransition):
            self.reveals.transition(row.request_id, _S.WON, tx_hash=tx.tx_hash)
            report.sent += 1
            report.won += 1
            log.warning(
                "REVEALED the requested leaf ourselves (tx %s): our claim's collateral is safe",
                tx.tx_hash,
                extra=_log(row),
            )

    def _send_failed(self, row: RevealRow, err: ChainError, report: RevealReport) -> None:
        name = revert_name(err)
        v = self.chain.leaf_request(row.request_id)
        if v.status is LeafRequestStatus.OPEN and name in _REFUSED:
            with suppress(IllegalTransition):
                self.reveals.transition(row.request_id, _S.LOST, reason=str(err))
                report.sent += 1
                report.lost += 1
                log.error("OUR LEAF REVEAL WAS REFUSED (%s): %s", name, err, extra=_log(row))
            return
        if v.status is LeafRequestStatus.OPEN:  # RPC trouble: try again next tick
            log.warning("revealLeaf failed: %s (trying again)", err, extra=_log(row))
            with suppress(IllegalTransition):
                self.reveals.transition(row.request_id, _S.WAITING)
            return
        log.info("revealLeaf reverted (%s): the request closed meanwhile", name, extra=_log(row))

    def _adopt_sending(self, row: RevealRow) -> None:
        """Journaled ``sending`` and the request still open: the transaction is lost (or still
        pending); sent again after ``resend_after_blocks``."""
        if self.chain.head() >= (row.sent_block or 0) + self.options.resend_after_blocks:
            with suppress(IllegalTransition):
                self.reveals.transition(row.request_id, _S.WAITING)

    def _move(self, row: RevealRow, to: RevealState, report: RevealReport, reason: str) -> None:
        with suppress(IllegalTransition):
            self.reveals.transition(row.request_id, to, reason=reason)
            if to is _S.WON:
                report.won += 1
            elif to is _S.NODE_REVEALED:
                report.node_revealed += 1
            elif to is _S.TOO_LATE:
                report.too_late += 1
                log.error("LEAF REVEAL TOO LATE: %s", reason, extra=_log(row))


def _log(row: RevealRow) -> dict[str, Any]:
    return {"request_id": "0x" + row.request_id.hex(), "node": row.node, "state": row.state.value}
