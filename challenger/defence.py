"""Defending the jobs this challenger found correct (issue 15, audit finding A4-1).

A claim on a job that ends ``Invalid`` forfeits the claimant's collateral. A node can dispute
its own correct, claimed job from a second address and stay silent: at the proof deadline
``settle`` marks the job invalid and every honest claimant loses its collateral. The contract's
``defend`` is open to anyone (a valid proof is a valid defence), so the challenger proves the
job itself and defends it, unless the node (paid the bond for defending) does so first.

One :meth:`Defender.step` per tick, after the claims:

- **record**: the log follower records every ``DisputeOpened`` (not our own) on a job the
  store knows as a ``watching`` row, in its checkpoint transaction (:meth:`DefenceStore.opened`),
  and every ``DisputeDefended``'s defender (:meth:`DefenceStore.defended`).
- **decide**: a ``watching`` row is ours to defend when the job's re-run matched by the
  circuit's witness and, by :class:`DefendMode`, ``claimed``: it is in the pool's sample (a
  claim row planned, sent or open: collateral is or was about to be at stake); ``checked``:
  any such job (protects offline honest nodes too). Otherwise ``not_ours``. A job not judged
  yet stays ``watching``.
- **wait**: the node gets first go. Our proof starts at ``proof_deadline - reserve_s`` (at
  once when the window is shorter), ``reserve_s`` being the time our proof and the defence
  transaction need (measure the model's proof time: ``docs/validators.md``).
- **prove**: the row moves to ``proving`` (journaled) and the proof runs in a worker process
  (:class:`ProcessProofWorker`: ezkl holds the GIL for a whole proof, so the tick loop would
  stall in a thread). After a restart a ``proving`` row is proven again. The finished proof is
  stored in the row (``proven``) with its duration.
- **send**: ``proven`` -> ``sending`` (journaled with the head block *before* the transaction)
  -> ``won`` when ``defend`` lands. A ``sending`` row found after a restart is adopted from the
  chain: defended (by us, says the DisputeDefended event's defender, or by someone else),
  still open after ``resend_after_blocks`` -> sent again; so a defence is never sent twice
  while the first may still land.
- **give up**: the dispute defended by anyone else -> ``node_defended``; the proof deadline
  passed or the dispute settled before ours landed -> ``too_late`` (an error: collateral is
  lost); our proof refused by the contract -> ``lost`` (an error).

Every state change is one conditional update (``spotcheck.kit.db.move``); chain side effects
only happen from journaled states, after re-reading the dispute on chain.
"""

from __future__ import annotations

import enum
import logging
import multiprocessing
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from challenger.chain_io import DisputeView
from challenger.store import ClaimState, JobState, Store
from spotcheck.chain import DisputeStatus, TxResult
from spotcheck.errors import ChainError, ConfigError, revert_name
from spotcheck.kit.db import IllegalTransition, move
from verifier.prove import ProofBundle

log = logging.getLogger(__name__)


class DefendMode(enum.StrEnum):
    """Which disputed jobs the challenger defends (config ``defend``)."""

    #: Jobs it has (or was about to put) collateral on: the pool's sample of its matches.
    CLAIMED = "claimed"
    #: Every job it re-ran and found correct by the circuit (protects offline honest nodes).
    CHECKED = "checked"
    NEVER = "never"


class DefenceState(enum.StrEnum):
    WATCHING = "watching"
    NOT_OURS = "not_ours"
    WAITING = "waiting"
    PROVING = "proving"
    PROVEN = "proven"
    SENDING = "sending"
    WON = "won"
    LOST = "lost"
    NODE_DEFENDED = "node_defended"
    TOO_LATE = "too_late"


_S = DefenceState
#: to -> the states it may be reached from.
TRANSITIONS: dict[DefenceState, frozenset[DefenceState]] = {
    _S.NOT_OURS: frozenset({_S.WATCHING}),
    _S.WAITING: frozenset({_S.WATCHING}),
    _S.PROVING: frozenset({_S.WAITING, _S.PROVING}),
    _S.PROVEN: frozenset({_S.PROVING, _S.SENDING}),
    _S.SENDING: frozenset({_S.PROVEN}),
    _S.WON: frozenset({_S.SENDING}),
    _S.LOST: frozenset({_S.SENDING}),
    _S.NODE_DEFENDED: frozenset({_S.WATCHING, _S.WAITING, _S.PROVING, _S.PROVEN, _S.SENDING}),
    _S.TOO_LATE: frozenset({_S.WATCHING, _S.WAITING, _S.PROVING, _S.PROVEN, _S.SENDING}),
}
#: States with work left (the step reads these).
ACTIVE = (_S.WATCHING, _S.WAITING, _S.PROVING, _S.PROVEN, _S.SENDING)
#: Reverts that say our proof or instances are wrong: sending again cannot help.
_REFUSED = frozenset({"ProofRejected", "InstancesMismatch", "OutputMismatch", "InputMismatch"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ch_defences (
    dispute_id     BLOB PRIMARY KEY,   -- = the job key in ch_jobs
    node           TEXT NOT NULL,
    disputer       TEXT NOT NULL,
    proof_deadline INTEGER NOT NULL,
    block          INTEGER NOT NULL,   -- DisputeOpened's block
    state          TEXT NOT NULL,
    reason         TEXT,
    start_at       INTEGER,            -- chain time our proof starts (node first until then)
    attempts       INTEGER NOT NULL DEFAULT 0,
    proof          TEXT,               -- ProofBundle JSON once proven
    proof_s        REAL,               -- seconds the proof took
    sent_block     INTEGER,
    tx_hash        TEXT,
    defended_by    TEXT,               -- DisputeDefended's defender
    updated_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ch_defences_state ON ch_defences(state);
"""


@dataclass(frozen=True)
class DefenceRow:
    dispute_id: bytes
    node: str
    disputer: str
    proof_deadline: int
    block: int
    state: DefenceState
    reason: str | None
    start_at: int | None
    attempts: int
    proof: ProofBundle | None
    proof_s: float | None
    sent_block: int | None
    tx_hash: str | None
    defended_by: str | None


_COLS = (
    "dispute_id, node, disputer, proof_deadline, block, state, reason, start_at, attempts, "
    "proof, proof_s, sent_block, tx_hash, defended_by"
)


def _row(r: sqlite3.Row) -> DefenceRow:
    return DefenceRow(
        dispute_id=bytes(r["dispute_id"]),
        node=r["node"],
        disputer=r["disputer"],
        proof_deadline=int(r["proof_deadline"]),
        block=int(r["block"]),
        state=DefenceState(r["state"]),
        reason=r["reason"],
        start_at=None if r["start_at"] is None else int(r["start_at"]),
        attempts=int(r["attempts"]),
        proof=None if r["proof"] is None else ProofBundle.from_json(r["proof"]),
        proof_s=None if r["proof_s"] is None else float(r["proof_s"]),
        sent_block=None if r["sent_block"] is None else int(r["sent_block"]),
        tx_hash=r["tx_hash"],
        defended_by=r["defended_by"],
    )


class DefenceStore:
    """The ``ch_defences`` table of a :class:`Store` (same connection, same transition rule)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn
        self.conn.executescript(_SCHEMA)

    # -- recorded by the log follower (inside its checkpoint transaction) ---------------------

    @staticmethod
    def opened(
        conn: sqlite3.Connection,
        *,
        dispute_id: bytes,
        node: str,
        disputer: str,
        proof_deadline: int,
        block: int,
    ) -> bool:
        """Record a dispute opened by someone else on a job we know (not a skipped one)."""
        known = conn.execute(
            "SELECT 1 FROM ch_jobs WHERE job_key = ? AND state != ?",
            (dispute_id, JobState.SKIPPED.value),
        ).fetchone()
        if known is None:
            return False
        cur = conn.execute(
            "INSERT OR IGNORE INTO ch_defences(dispute_id, node, disputer, proof_deadline, block, "
            "state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (dispute_id, node, disputer, proof_deadline, block, _S.WATCHING.value, time.time()),
        )
        return bool(cur.rowcount)

    def reschedule(self, dispute_id: bytes, proof_deadline: int, start_at: int) -> None:
        """A ``waiting`` row's deadline as the chain holds it now, and its start time."""
        self.conn.execute(
            "UPDATE ch_defences SET proof_deadline = ?, start_at = ?, updated_at = ? "
            "WHERE dispute_id = ? AND state = ?",
            (proof_deadline, start_at, time.time(), dispute_id, _S.WAITING.value),
        )

    @staticmethod
    def defended(conn: sqlite3.Connection, dispute_id: bytes, defender: str) -> None:
        conn.execute(
            "UPDATE ch_defences SET defended_by = ? WHERE dispute_id = ?", (defender, dispute_id)
        )

    @staticmethod
    def forget_after(conn: sqlite3.Connection, fork: int) -> int:
        """A reorg replaced the blocks after ``fork``: undecided rows they recorded go (the
        replay records them again with the new deadline)."""
        cur = conn.execute(
            "DELETE FROM ch_defences WHERE block > ? AND state = ?", (fork, _S.WATCHING.value)
        )
        return cur.rowcount

    # -- queries ----------------------------------------------------------------------------

    def rows(self, *states: DefenceState) -> list[DefenceRow]:
        marks = ",".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT {_COLS} FROM ch_defences WHERE state IN ({marks}) ORDER BY proof_deadline",
            [s.value for s in states],
        ).fetchall()
        return [_row(r) for r in rows]

    def row(self, dispute_id: bytes) -> DefenceRow | None:
        r = self.conn.execute(
            f"SELECT {_COLS} FROM ch_defences WHERE dispute_id = ?", (dispute_id,)
        ).fetchone()
        return None if r is None else _row(r)

    def judged_correct(self, job_key: bytes) -> bool | None:
        """True: matched by the circuit's witness; False: anything else decided; None: the
        job is not judged yet."""
        r = self.conn.execute(
            "SELECT state, witness_diff FROM ch_jobs WHERE job_key = ?", (job_key,)
        ).fetchone()
        if r is None:
            return False
        state = JobState(r["state"])
        if state in (JobState.SEEN, JobState.SAMPLED):
            return None
        return state is JobState.MATCHED and r["witness_diff"] is not None

    def claim_state(self, job_key: bytes) -> ClaimState | None:
        """Our paid-check claim on the job: an on-chain job's (``ch_claims``) or a batch
        leaf's (``ch_leaf_claims``); None: no claim row."""
        for sql in (
            "SELECT state FROM ch_claims WHERE job_key = ?",
            "SELECT state FROM ch_leaf_claims WHERE leaf_key = ?",
        ):
            r = self.conn.execute(sql, (job_key,)).fetchone()
            if r is not None:
                return ClaimState(r[0])
        return None

    def summary(self) -> dict[str, int]:
        counts = dict(
            self.conn.execute("SELECT state, COUNT(*) FROM ch_defences GROUP BY state").fetchall()
        )

        def total(*states: DefenceState) -> int:
            return sum(int(counts.get(s.value, 0)) for s in states)

        return {
            "sent": total(_S.WON, _S.LOST),
            "won": total(_S.WON),
            "lost": total(_S.LOST),
            "too_late": total(_S.TOO_LATE),
            "node_defended": total(_S.NODE_DEFENDED),
            "pending": total(_S.WAITING, _S.PROVING, _S.PROVEN, _S.SENDING),
            "watching": total(_S.WATCHING),
        }

    def transition(self, dispute_id: bytes, to: DefenceState, **fields: Any) -> None:
        allowed = {"reason", "start_at", "attempts", "proof", "proof_s", "sent_block", "tx_hash"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown defence field(s) {sorted(unknown)}")
        move(
            self.conn,
            "ch_defences",
            ("dispute_id", dispute_id),
            [s.value for s in TRANSITIONS[to]],
            to.value,
            state_column="state",
            **fields,
        )


def why_not_ours(defences: DefenceStore, mode: DefendMode, job_key: bytes) -> str | None:
    """Why a job is not ours to defend by ``mode`` (None: it is, or it is not judged yet);
    shared by the defence of disputes and the reveal of requested leaves
    (``challenger.reveals``)."""
    correct = defences.judged_correct(job_key)
    if correct is None:
        return "not judged before the dispute closed"
    if not correct:
        return "not found correct by our re-run"
    if mode is DefendMode.CLAIMED:
        claim = defences.claim_state(job_key)
        if claim is None or claim is ClaimState.UNCLAIMABLE:
            return "not claimed (defend = claimed)"
    return None


class DefencePort(Protocol):
    """What the defender needs from the chain (``challenger.chain_io.ApeChain`` has it)."""

    @property
    def me(self) -> str: ...

    def head(self) -> int: ...

    def timestamp(self) -> int: ...

    def dispute(self, dispute_id: bytes) -> DisputeView: ...

    def defend(
        self,
        dispute_id: bytes,
        proof: bytes,
        instances: Sequence[int],
        committed_output: Sequence[int],
    ) -> TxResult: ...


class ProofWorker(Protocol):
    """Proves off the tick thread; ``submit`` returns at once."""

    def submit(self, model_id: bytes, input_q: Sequence[int]) -> Future[ProofBundle]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ModelFiles:
    """The files a model's proving keys are built from (the node's: same content-hashed cache)."""

    onnx_path: Path
    calibration_path: Path | None
    srs_path: Path | None
    srs_sha256: str | None

    def key(self) -> tuple[Any, ...]:
        return (self.onnx_path, self.calibration_path, self.srs_path, self.srs_sha256)


#: Artifacts loaded in the worker process, by the files they come from.
_CHILD_ARTIFACTS: dict[tuple[Any, ...], Any] = {}


def load_artifacts(files: ModelFiles) -> Any:
    """Build (or load from the cache) the model's circuit and proving keys."""
    from verifier.artifacts import build_artifacts_from_files

    return build_artifacts_from_files(*files.key())


def _prove_in_child(key: tuple[Any, ...], input_q: list[int]) -> str:
    """Runs in the worker process (artifacts loaded once per model, kept warm)."""
    from verifier.prove import prove

    if key not in _CHILD_ARTIFACTS:
        _CHILD_ARTIFACTS[key] = load_artifacts(ModelFiles(*key))
    return prove(_CHILD_ARTIFACTS[key], input_q).to_json()


class ProcessProofWorker:
    """Proofs in one spawned process of their own (ezkl holds the GIL for a whole proof)."""

    def __init__(self, models: Mapping[bytes, ModelFiles]) -> None:
        self._models = dict(models)
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, model_id: bytes, input_q: Sequence[int]) -> Future[ProofBundle]:
        files = self._models.get(model_id)
        if files is None:
            raise ConfigError(f"model 0x{model_id.hex()} has no files in the challenger config")
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        inner = self._pool.submit(_prove_in_child, files.key(), [int(v) for v in input_q])
        outer: Future[ProofBundle] = Future()

        def done(f: Future[str]) -> None:
            if outer.cancelled():  # the dispute closed meanwhile: nobody waits for it
                return
            if f.cancelled():  # the worker was shut down before it ran
                outer.set_exception(RuntimeError("proof cancelled: the worker stopped"))
                return
            err = f.exception()
            if err is not None:
                if isinstance(err, BrokenProcessPool):
                    self._pool = None  # the worker died: a new one next time
                outer.set_exception(err)
            else:
                outer.set_result(ProofBundle.from_json(f.result()))

        inner.add_done_callback(done)
        return outer

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


@dataclass(frozen=True)
class DefenceOptions:
    mode: DefendMode = DefendMode.CLAIMED
    #: Chain seconds before the proof deadline at which our proof starts when the node has not
    #: defended yet: more than the model's proof time plus a few blocks for the transaction.
    reserve_s: int = 300
    #: Blocks after a send before a defence still absent on chain is sent again.
    resend_after_blocks: int = 5


#: Longest wait between two attempts at a proof that failed (the first waits 2 s, doubling).
RETRY_MAX_S = 60.0


@dataclass
class DefenceReport:
    decided: int = 0
    started: int = 0
    proven: int = 0
    sent: int = 0
    won: int = 0
    lost: int = 0
    too_late: int = 0
    node_defended: int = 0


class Defender:
    """The defence state machine over a :class:`DefencePort`, a :class:`ProofWorker` and the
    service's store."""

    def __init__(
        self,
        store: Store,
        chain: DefencePort,
        worker: ProofWorker,
        options: DefenceOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if options.mode is DefendMode.NEVER:
            raise ValueError("a Defender with mode 'never' defends nothing: build none")
        self.defences = DefenceStore(store)
        self.store = store
        self.chain = chain
        self.worker = worker
        self.options = options
        self._clock = clock
        #: dispute id -> (its running proof, when it started)
        self._running: dict[bytes, tuple[Future[ProofBundle], float]] = {}
        #: dispute id -> when (clock) a failed proof may be tried again (doubling backoff)
        self._retry_at: dict[bytes, float] = {}

    def step(self) -> DefenceReport:
        report = DefenceReport()
        rows = self.defences.rows(*ACTIVE)
        if not rows:
            return report
        now = self.chain.timestamp()
        for row in rows:
            d = self.chain.dispute(row.dispute_id)
            if self._closed(row, d, now, report):
                continue
            if row.state is _S.WATCHING:
                self._decide(row, d, now, report)
            elif row.state is _S.WAITING:
                self._maybe_start(self._rescheduled(row, d, now), now, report)
            elif row.state is _S.SENDING:
                self._adopt_sending(row)
        # Proofs started or finished in this step are collected and sent in the same step.
        for row in self.defences.rows(_S.PROVING):
            self._collect(row, report)
        for row in self.defences.rows(_S.PROVEN):
            self._send(row, report)
        return report

    def close(self) -> None:
        self.worker.close()

    # -- closed on chain --------------------------------------------------------------------

    def _closed(self, row: DefenceRow, d: DisputeView, now: int, report: DefenceReport) -> bool:
        """Ends the row if the dispute is over or out of time; True if it did (or must wait)."""
        over = d.status in (DisputeStatus.DEFENDED, DisputeStatus.SLASHED)
        deadline = d.proof_deadline if d.status is DisputeStatus.OPEN else row.proof_deadline
        if row.state is _S.WATCHING and (over or now > deadline):
            why = self._not_ours(row)
            if why is not None:  # never ours to defend: nothing lost on our side
                with suppress(IllegalTransition):
                    self.defences.transition(row.dispute_id, _S.NOT_OURS, reason=why)
                return True
        if d.status is DisputeStatus.DEFENDED:
            if row.state is _S.SENDING and row.defended_by is None:
                return True  # whose defence: the DisputeDefended event says (next tick)
            if row.state is _S.SENDING and _same(row.defended_by, self.chain.me):
                self._move(row, _S.WON, report, reason="defended (adopted after a restart)")
            else:
                self._move(row, _S.NODE_DEFENDED, report, reason=f"defended by {row.defended_by}")
            return True
        if d.status is DisputeStatus.SLASHED:
            self._move(row, _S.TOO_LATE, report, reason="settled before our defence landed")
            return True
        if now > deadline:
            why = "proof deadline passed" if d.status is DisputeStatus.OPEN else "dispute gone"
            self._move(row, _S.TOO_LATE, report, reason=why)
            return True
        return d.status is DisputeStatus.NONE  # a reorg dropped it: wait for the replay

    # -- decide -----------------------------------------------------------------------------

    def _not_ours(self, row: DefenceRow) -> str | None:
        """Why the job is not ours to defend (None: it is, or it is not judged yet)."""
        return why_not_ours(self.defences, self.options.mode, row.dispute_id)

    def _decide(self, row: DefenceRow, d: DisputeView, now: int, report: DefenceReport) -> None:
        if self.defences.judged_correct(row.dispute_id) is None:
            return  # not judged yet
        why = self._not_ours(row)
        if why is not None:
            with suppress(IllegalTransition):
                self.defences.transition(row.dispute_id, _S.NOT_OURS, reason=why)
            return
        start_at = max(now, d.proof_deadline - self.options.reserve_s)
        with suppress(IllegalTransition):
            self.defences.transition(row.dispute_id, _S.WAITING, start_at=start_at)
            report.decided += 1
            log.warning(
                "dispute on a job we found correct (disputer %s): defending it ourselves at %d "
                "unless the node does first (proof deadline %d)",
                row.disputer,
                start_at,
                d.proof_deadline,
                extra=_log(row),
            )
        self._maybe_start(self.defences.row(row.dispute_id) or row, now, report)

    def _rescheduled(self, row: DefenceRow, d: DisputeView, now: int) -> DefenceRow:
        """The start time from the deadline the chain holds now (audit A6-6): a reorg can
        re-mine the dispute with an earlier proof deadline than the one the row was decided
        on; the row keeps the earlier of the two start times and the chain's deadline."""
        if d.status is not DisputeStatus.OPEN:
            return row
        start_at = max(now, d.proof_deadline - self.options.reserve_s)
        if row.start_at is not None and start_at >= row.start_at:
            if d.proof_deadline == row.proof_deadline:
                return row
            start_at = row.start_at
        self.defences.reschedule(row.dispute_id, d.proof_deadline, start_at)
        if start_at != row.start_at:
            log.warning(
                "the dispute's proof deadline is now %d (was %d, a reorg re-mined it): our "
                "proof starts at %d",
                d.proof_deadline,
                row.proof_deadline,
                start_at,
                extra=_log(row),
            )
        return self.defences.row(row.dispute_id) or row

    # -- prove ------------------------------------------------------------------------------

    def _maybe_start(self, row: DefenceRow, now: int, report: DefenceReport) -> None:
        if row.state is not _S.WAITING or now < (row.start_at or 0):
            return
        with suppress(IllegalTransition):
            self.defences.transition(row.dispute_id, _S.PROVING, attempts=row.attempts + 1)
            if self._submit(row):
                report.started += 1

    def _submit(self, row: DefenceRow) -> bool:
        data = self._job_data(row.dispute_id)
        if data is None:
            log.error("cannot defend: the job's input or output is unknown", extra=_log(row))
            return False
        model_id, input_q, _ = data
        try:
            future = self.worker.submit(model_id, input_q)
        except ConfigError as err:
            log.error("cannot defend: %s", err, extra=_log(row))
            return False
        self._running[row.dispute_id] = (future, self._clock())
        log.info("proving the disputed job for our defence", extra=_log(row))
        return True

    def _collect(self, row: DefenceRow, report: DefenceReport) -> None:
        running = self._running.get(row.dispute_id)
        if running is None:  # in flight before a restart (or not startable): prove again
            if self._clock() < self._retry_at.get(row.dispute_id, 0.0):
                return  # a failed proof: backing off before the next attempt
            with suppress(IllegalTransition):
                self.defences.transition(row.dispute_id, _S.PROVING, attempts=row.attempts + 1)
                self._submit(row)
            return
        future, started = running
        if not future.done():
            return
        del self._running[row.dispute_id]
        seconds = self._clock() - started
        try:
            bundle = future.result()
        except Exception as err:  # a failed proof: tried again while there is time
            wait = min(RETRY_MAX_S, 2.0 ** min(row.attempts, 16))
            self._retry_at[row.dispute_id] = self._clock() + wait
            log.error("our proof failed (%s): trying again in %.0f s", err, wait, extra=_log(row))
            return
        self._retry_at.pop(row.dispute_id, None)
        with suppress(IllegalTransition):
            self.defences.transition(
                row.dispute_id, _S.PROVEN, proof=bundle.to_json(), proof_s=seconds
            )
            report.proven += 1
            log.info("proved in %.2f s", seconds, extra=_log(row))
            if seconds > self.options.reserve_s / 2:
                log.warning(
                    "the proof took %.0f s, more than half the defence reserve (%d s): raise "
                    "defend_reserve_s",
                    seconds,
                    self.options.reserve_s,
                    extra=_log(row),
                )

    def _job_data(self, job_key: bytes) -> tuple[bytes, list[int], list[int]] | None:
        job = self.store.job(job_key)
        if job is None or job.output_q is None:
            return None
        input_q = job.input_q or self.store.request_input(job.job_id)
        return None if input_q is None else (job.model_id, input_q, job.output_q)

    # -- send -------------------------------------------------------------------------------

    def _send(self, row: DefenceRow, report: DefenceReport) -> None:
        data = self._job_data(row.dispute_id)
        if row.proof is None or data is None:
            return
        d = self.chain.dispute(row.dispute_id)
        if self._closed(row, d, self.chain.timestamp(), report):
            return
        committed = data[2]
        self.defences.transition(row.dispute_id, _S.SENDING, sent_block=self.chain.head())
        try:
            tx = self.chain.defend(row.dispute_id, row.proof.proof, row.proof.instances, committed)
        except ChainError as err:
            self._send_failed(row, err, report)
            return
        with suppress(IllegalTransition):
            self.defences.transition(row.dispute_id, _S.WON, tx_hash=tx.tx_hash)
            report.sent += 1
            report.won += 1
            log.warning(
                "DEFENDED the disputed job ourselves (tx %s): our claim's collateral is safe",
                tx.tx_hash,
                extra=_log(row),
            )

    def _send_failed(self, row: DefenceRow, err: ChainError, report: DefenceReport) -> None:
        name = revert_name(err)
        d = self.chain.dispute(row.dispute_id)
        if d.status is DisputeStatus.OPEN and name in _REFUSED:
            with suppress(IllegalTransition):
                self.defences.transition(row.dispute_id, _S.LOST, reason=str(err))
                report.sent += 1
                report.lost += 1
                log.error("OUR DEFENCE WAS REFUSED (%s): %s", name, err, extra=_log(row))
            return
        if d.status is DisputeStatus.OPEN:  # RPC trouble: try again next tick
            log.warning("defend failed: %s (trying again)", err, extra=_log(row))
            with suppress(IllegalTransition):
                self.defences.transition(row.dispute_id, _S.PROVEN)
            return
        # Defended by the node meanwhile, or settled: the next step reads which.
        log.info("defend reverted (%s): the dispute closed meanwhile", name, extra=_log(row))

    def _adopt_sending(self, row: DefenceRow) -> None:
        """Journaled ``sending`` and the dispute still open: the transaction is lost (or still
        pending); sent again after ``resend_after_blocks``."""
        if self.chain.head() >= (row.sent_block or 0) + self.options.resend_after_blocks:
            with suppress(IllegalTransition):
                self.defences.transition(row.dispute_id, _S.PROVEN)

    # -- helpers ----------------------------------------------------------------------------

    def _move(self, row: DefenceRow, to: DefenceState, report: DefenceReport, reason: str) -> None:
        with suppress(IllegalTransition):
            self.defences.transition(row.dispute_id, to, reason=reason)
            running = self._running.pop(row.dispute_id, None)
            if running is not None:
                running[0].cancel()
            if to is _S.WON:
                report.won += 1
            elif to is _S.NODE_DEFENDED:
                report.node_defended += 1
            elif to is _S.TOO_LATE:
                report.too_late += 1
                log.error("DEFENCE TOO LATE: %s", reason, extra=_log(row))


def _same(a: str | None, b: str) -> bool:
    return a is not None and a.lower() == b.lower()


def _log(row: DefenceRow) -> dict[str, Any]:
    return {"dispute_id": "0x" + row.dispute_id.hex(), "node": row.node, "state": row.state.value}
