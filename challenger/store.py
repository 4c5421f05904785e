"""The challenger's local state: one row per commitment, moved through explicit states.

```
            ┌─> skipped
 seen ──────┤
            └─> sampled ──┬─> matched
                          └─> mismatched ──┬─> reported            (dry run)
                                           ├─> missed              (window closed first;
                                           │                        reason: seen late or not)
                                           ├─> preempted           (another's dispute or request)
                                           └─> dispute_sent ──> dispute_open ──┬─> won
                                                                               └─> lost
```

A ``dispute_sent`` or ``dispute_open`` job whose dispute the chain no longer has (its
transaction reverted, or a reorg dropped it and it is not pending again) goes back to
``mismatched``, so it is disputed again inside its window (``missed`` after).

Every transition is a single conditional ``UPDATE ... WHERE state IN (allowed)`` (the
services' one rule, ``spotcheck.kit.db.move``) so replaying it after a crash changes nothing:
it raises :class:`spotcheck.kit.db.IllegalTransition` instead, which a caller that may find the
row already moved on catches. Commitments are recorded by the log
follower's handler in the same SQLite transaction that advances its checkpoint, so none is
missed or recorded twice. Chain side effects happen only from recorded states, after
re-checking the chain (see ``challenger.service``), so a kill at any point and a restart
never sends a second dispute and never forgets a settlement.

Batches have their own small machine: ``seen -> fetched | unavailable | not_judged | expired``;
fetching inserts one job row per sampled leaf (keyed by position: ``batch_leaf_key(batchId,
index)``), already ``sampled`` (``undisputable`` if its input is outside the model's domain,
sampled or not), in the same transaction; leaves not sampled carry no work and are only
counted (``leaves_skipped``, reported with the ``skipped`` jobs). Jobs by state are counted by
triggers as rows change (``ch_state_counts``), so metrics and ``/status`` scan nothing.
``unavailable`` (no usable listing by the last attempt) plans one leaf request per sampled
position, in the same transaction, and counts the batch once: ``listings_invalid`` if any
attempt was answered with bytes that are not the committed listing, ``batches_unavailable``
otherwise. Neither is an accusation; the batch is counted ``batches_withheld`` (once,
:meth:`Store.report_withheld`) only when one of its leaf
requests ends ``slashed`` (not revealed by its deadline):

```
 planned ──┬─> sent ──┬─> open ─────┬─> revealed    (the node revealed: the leaf becomes a job)
           │          └─> foreign ──┤               (someone else's request on that leaf)
           ├─> reported (dry run)   └─> slashed     (no reveal by the deadline: settled)
           └─> missed   (window closed before sending, or RootMismatch: the batch id
                         holds another root after a reorg)
```

After a reorg, a ``revealed`` request whose reveal was dropped goes back to ``open`` (ours on
chain) or ``planned``, and an ``open`` or ``foreign`` request the chain no longer has goes back
to ``planned`` (its transaction not pending): both are decided again.

A revealed leaf enters ``ch_jobs`` as ``sampled`` with its dispute deadline, and from there
goes through the job machine above like any fetched leaf.

Rows are read by column name. Ids (job keys, model ids, roots, hashes) are stored as BLOBs,
compared byte for byte with what the chain returns; the node's store keeps them as hex text
because it serves them over HTTP as hex (a schema change would need a migration of running
databases for no reader's gain).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from spotcheck.chain import JobKind
from spotcheck.errors import StateError
from spotcheck.kit.db import IllegalTransition, move, transaction


class JobState(enum.StrEnum):
    SEEN = "seen"
    SKIPPED = "skipped"
    SAMPLED = "sampled"
    MATCHED = "matched"
    MISMATCHED = "mismatched"
    REPORTED = "reported"
    MISSED = "missed"
    PREEMPTED = "preempted"
    DISPUTE_SENT = "dispute_sent"
    DISPUTE_OPEN = "dispute_open"
    WON = "won"
    LOST = "lost"
    #: Input outside the model's domain: no proof exists, so it is never disputed.
    UNDISPUTABLE = "undisputable"


class BatchState(enum.StrEnum):
    SEEN = "seen"
    FETCHED = "fetched"
    #: No usable listing by the last attempt: leaf requests planned for the sampled leaves.
    UNAVAILABLE = "unavailable"
    #: A model this challenger does not judge: never fetched.
    NOT_JUDGED = "not_judged"
    #: The window closed before the challenger could act (it was down): nothing to do.
    EXPIRED = "expired"


class LeafRequestState(enum.StrEnum):
    PLANNED = "planned"
    SENT = "sent"
    OPEN = "open"
    FOREIGN = "foreign"
    REVEALED = "revealed"
    SLASHED = "slashed"
    REPORTED = "reported"
    MISSED = "missed"
    #: The leaf has someone else's dispute: no leaf request can open on it (audit9 A9-2).
    PREEMPTED = "preempted"


LEAF_REQUEST_TRANSITIONS: dict[LeafRequestState, frozenset[LeafRequestState]] = {
    LeafRequestState.SENT: frozenset({LeafRequestState.PLANNED}),
    # revealed -> planned | open: a reorg dropped the reveal (``Store.forget_after``);
    # open | foreign -> planned: a reorg dropped the request itself (re-decided).
    LeafRequestState.PLANNED: frozenset(
        {
            LeafRequestState.SENT,
            LeafRequestState.REVEALED,
            LeafRequestState.OPEN,
            LeafRequestState.FOREIGN,
        }
    ),
    LeafRequestState.OPEN: frozenset(
        {LeafRequestState.PLANNED, LeafRequestState.SENT, LeafRequestState.REVEALED}
    ),
    LeafRequestState.FOREIGN: frozenset({LeafRequestState.PLANNED, LeafRequestState.SENT}),
    LeafRequestState.REVEALED: frozenset(
        {
            LeafRequestState.PLANNED,
            LeafRequestState.SENT,
            LeafRequestState.OPEN,
            LeafRequestState.FOREIGN,
        }
    ),
    LeafRequestState.SLASHED: frozenset(
        {LeafRequestState.SENT, LeafRequestState.OPEN, LeafRequestState.FOREIGN}
    ),
    LeafRequestState.REPORTED: frozenset({LeafRequestState.PLANNED}),
    LeafRequestState.MISSED: frozenset({LeafRequestState.PLANNED}),
    LeafRequestState.PREEMPTED: frozenset({LeafRequestState.PLANNED, LeafRequestState.SENT}),
}


#: Allowed predecessors of each state (the only legal transitions).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SKIPPED: frozenset({JobState.SEEN}),
    JobState.SAMPLED: frozenset({JobState.SEEN}),
    JobState.MATCHED: frozenset({JobState.SAMPLED}),
    # dispute_open -> mismatched: a reorg dropped our dispute (audit A5-7).
    JobState.MISMATCHED: frozenset(
        {JobState.SAMPLED, JobState.DISPUTE_SENT, JobState.DISPUTE_OPEN}
    ),
    JobState.REPORTED: frozenset({JobState.MISMATCHED}),
    JobState.MISSED: frozenset({JobState.SAMPLED, JobState.MISMATCHED}),
    JobState.PREEMPTED: frozenset({JobState.MISMATCHED, JobState.DISPUTE_SENT}),
    JobState.DISPUTE_SENT: frozenset({JobState.MISMATCHED}),
    JobState.DISPUTE_OPEN: frozenset({JobState.MISMATCHED, JobState.DISPUTE_SENT}),
    JobState.WON: frozenset({JobState.DISPUTE_OPEN}),
    JobState.LOST: frozenset({JobState.DISPUTE_OPEN}),
    JobState.UNDISPUTABLE: frozenset({JobState.SAMPLED}),
}

TERMINAL = frozenset(
    {
        JobState.SKIPPED,
        JobState.MATCHED,
        JobState.REPORTED,
        JobState.MISSED,
        JobState.PREEMPTED,
        JobState.WON,
        JobState.LOST,
        JobState.UNDISPUTABLE,
    }
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ch_requests (
    job_id      TEXT PRIMARY KEY,   -- decimal uint256
    model_id    BLOB NOT NULL,
    input_q     TEXT NOT NULL,       -- JSON list of ints
    block       INTEGER              -- JobRequested's block (NULL: read from the chain)
);
CREATE TABLE IF NOT EXISTS ch_jobs (
    job_key            BLOB PRIMARY KEY,  -- dispute id
    kind               INTEGER NOT NULL,
    ref                TEXT NOT NULL,     -- jobId (on-chain) or batchId
    job_id             TEXT NOT NULL,
    model_id           BLOB NOT NULL,
    node               TEXT NOT NULL,
    commit_block       INTEGER NOT NULL,
    challenge_deadline INTEGER NOT NULL,
    state              TEXT NOT NULL,
    input_q            TEXT,
    output_q           TEXT,
    input_hash         BLOB,
    output_hash        BLOB,
    merkle_proof       TEXT,              -- JSON list of hex siblings (batch leaves)
    reason             TEXT,
    screen_diff        INTEGER,
    witness_diff       INTEGER,
    tx_hash            TEXT,
    bond               TEXT,
    proof_deadline     INTEGER,
    updated_at         REAL NOT NULL,
    leaf_index         INTEGER,           -- position in the batch (batch leaves)
    vrf_proof          TEXT,              -- "0x<x>,0x<y>": the VRF proof of a sampled job
    reorg_fork         INTEGER,           -- a reorg replaced its commit block (fork block)
    seen_at            INTEGER            -- chain time the row was recorded (NULL: unknown)
);
CREATE INDEX IF NOT EXISTS ch_jobs_state ON ch_jobs(state);
CREATE TABLE IF NOT EXISTS ch_batches (
    batch_id           TEXT PRIMARY KEY,
    model_id           BLOB NOT NULL,
    node               TEXT NOT NULL,
    root               BLOB NOT NULL,
    count              INTEGER NOT NULL,
    uri                TEXT NOT NULL,
    commit_block       INTEGER NOT NULL,
    challenge_deadline INTEGER NOT NULL,
    state              TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    last_error         TEXT,
    updated_at         REAL NOT NULL,
    failed_at          INTEGER,           -- chain time the last failed attempt started
    next_attempt_at    INTEGER,           -- chain time of the next attempt
    invalid_attempts   INTEGER,           -- attempts answered with a listing not the committed one
    withheld           INTEGER,           -- 1 once a leaf request of it ended unrevealed
    reorg_fork         INTEGER,           -- a reorg replaced its commit block (fork block)
    seen_at            INTEGER            -- chain time the batch was recorded (NULL: unknown)
);
CREATE INDEX IF NOT EXISTS ch_batches_state ON ch_batches(state);
CREATE TABLE IF NOT EXISTS ch_leaf_requests (
    request_id         BLOB PRIMARY KEY,  -- batchLeafKey(batchId, index)
    batch_id           TEXT NOT NULL,
    leaf_index         INTEGER NOT NULL,
    model_id           BLOB NOT NULL,
    node               TEXT NOT NULL,
    challenge_deadline INTEGER NOT NULL,
    state              TEXT NOT NULL,
    requester          TEXT,
    bond               TEXT,
    reveal_deadline    INTEGER,
    tx_hash            TEXT,
    reason             TEXT,
    ours               INTEGER NOT NULL DEFAULT 0,  -- 1 once seen on chain as our request
    updated_at         REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ch_leaf_requests_state ON ch_leaf_requests(state);
CREATE TABLE IF NOT EXISTS ch_reveals (
    request_id      BLOB PRIMARY KEY,
    batch_id        TEXT NOT NULL,
    leaf_index      INTEGER NOT NULL,
    job_id          TEXT NOT NULL,
    input_q         TEXT NOT NULL,
    output_q        TEXT NOT NULL,
    input_hash      BLOB NOT NULL,
    output_hash     BLOB NOT NULL,
    dispute_deadline INTEGER NOT NULL,
    tx_hash         TEXT,
    merkle_proof    TEXT,              -- JSON hex siblings, when the reveal's calldata was read
    block           INTEGER            -- LeafRevealed's block (NULL: recorded before it was kept)
);
CREATE TABLE IF NOT EXISTS ch_withdrawals (
    tx_hash  TEXT PRIMARY KEY,
    amount   TEXT NOT NULL,
    at       REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ch_claims (
    job_key            BLOB PRIMARY KEY,  -- onchainJobKey(jobId)
    job_id             TEXT NOT NULL,
    model_id           BLOB NOT NULL,
    vrf_proof          TEXT NOT NULL,
    challenge_deadline INTEGER NOT NULL,
    state              TEXT NOT NULL,
    planned_at         INTEGER NOT NULL,  -- chain time it became claimable
    sent_block         INTEGER,           -- head when the claim transaction was started
    tx_hash            TEXT,
    payout             TEXT,              -- base units collected (forfeited: collateral lost)
    reason             TEXT,
    updated_at         REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ch_claims_state ON ch_claims(state);
CREATE TABLE IF NOT EXISTS ch_leaf_claims (
    leaf_key           BLOB PRIMARY KEY,  -- batchLeafKey(batchId, index)
    batch_id           TEXT NOT NULL,
    leaf_index         INTEGER NOT NULL,
    model_id           BLOB NOT NULL,
    vrf_proof          TEXT NOT NULL,
    challenge_deadline INTEGER NOT NULL,  -- the batch's: claims close with its window
    commit_block       INTEGER NOT NULL,  -- the batch's, when the claim was planned
    state              TEXT NOT NULL,     -- ClaimState
    planned_at         INTEGER NOT NULL,
    sent_block         INTEGER,
    tx_hash            TEXT,
    payout             TEXT,              -- base units collected (forfeited: collateral lost)
    reason             TEXT,
    updated_at         REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ch_leaf_claims_state ON ch_leaf_claims(state);
CREATE TABLE IF NOT EXISTS ch_counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
"""

#: Jobs by state, kept by triggers on every insert, state change and delete of ``ch_jobs``
#: (issue 14: no ``GROUP BY`` over every row on each tick's metrics and ``/status``).
_COUNT_SCHEMA = """
CREATE TABLE IF NOT EXISTS ch_state_counts (
    state  TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS ch_jobs_count_ins AFTER INSERT ON ch_jobs BEGIN
    INSERT OR IGNORE INTO ch_state_counts(state, n) VALUES (NEW.state, 0);
    UPDATE ch_state_counts SET n = n + 1 WHERE state = NEW.state;
END;
CREATE TRIGGER IF NOT EXISTS ch_jobs_count_del AFTER DELETE ON ch_jobs BEGIN
    UPDATE ch_state_counts SET n = n - 1 WHERE state = OLD.state;
END;
CREATE TRIGGER IF NOT EXISTS ch_jobs_count_upd AFTER UPDATE OF state ON ch_jobs
WHEN OLD.state != NEW.state BEGIN
    UPDATE ch_state_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT OR IGNORE INTO ch_state_counts(state, n) VALUES (NEW.state, 0);
    UPDATE ch_state_counts SET n = n + 1 WHERE state = NEW.state;
END;
"""
#: Batch leaves not sampled: counted, never stored (a row each was most of the database).
LEAVES_SKIPPED = "leaves_skipped"

#: Why a job ended ``missed`` (its ``reason``). Only ``MISSED_SEEN_LATE`` is a job this
#: challenger never had a chance at (first recorded at or after its deadline: the commitment or
#: the reveal recorded that late, the challenger down or its follower far behind); the others are
#: jobs it saw in time and did not finish (slow re-execution or listing, a dispute deferred or
#: failing until the end). A batch leaf counts as seen when its batch was, however late its
#: listing came back (:attr:`BatchRow.seen_at`).
MISSED_SEEN_LATE = "seen after window closed"
MISSED_BEFORE_CHECK = "window closed before re-execution"
MISSED_BEFORE_DISPUTE = "window closed before the dispute"


@dataclass(frozen=True)
class JobRow:
    job_key: bytes
    kind: JobKind
    ref: int
    job_id: int
    model_id: bytes
    node: str
    commit_block: int
    challenge_deadline: int
    state: JobState
    input_q: list[int] | None
    output_q: list[int] | None
    input_hash: bytes | None
    output_hash: bytes | None
    merkle_proof: list[bytes] | None
    reason: str | None
    tx_hash: str | None
    bond: int | None
    proof_deadline: int | None
    leaf_index: int | None = None
    #: The VRF proof that sampled it (``"0x<x>,0x<y>"``, ``challenger.sampling.parse_proof``).
    vrf_proof: str | None = None
    #: Chain time (head timestamp) when this challenger first recorded the job: the commitment's
    #: event, the batch's (:attr:`BatchRow.seen_at`; the listing's time only for a batch row
    #: from before that column) or the reveal (None: unknown, a row from before the column).
    #: A job first seen at or after its deadline could never be acted on (:func:`missed_reason`).
    seen_at: int | None = None


@dataclass(frozen=True)
class BatchRow:
    batch_id: int
    model_id: bytes
    node: str
    root: bytes
    count: int
    uri: str
    commit_block: int
    challenge_deadline: int
    state: BatchState
    attempts: int
    last_error: str | None
    failed_at: int | None = None
    next_attempt_at: int | None = None
    #: Failed attempts answered with bytes that are not the committed listing (invalid).
    invalid_attempts: int = 0
    #: A leaf request on it ended unrevealed (slashed): withholding proven, reported once.
    withheld: bool = False
    #: Chain time (the tick's head timestamp) when the follower recorded its BatchCommitted:
    #: when this challenger first saw the batch, and so each of its leaves (None: unknown, a
    #: row from before the column). Its leaves' :attr:`JobRow.seen_at`, however late the
    #: listing is recorded.
    seen_at: int | None = None


@dataclass(frozen=True)
class Leaf:
    """One leaf of a listing that rebuilt the committed root (``index``: its position)."""

    index: int
    job_id: int
    input_q: list[int]
    output_q: list[int]
    input_hash: bytes
    output_hash: bytes
    proof: list[bytes]
    #: Why the input is outside the model's domain (the leaf is never disputed), or None.
    outside: str | None = None


@dataclass(frozen=True)
class LeafRequestRow:
    request_id: bytes
    batch_id: int
    index: int
    model_id: bytes
    node: str
    challenge_deadline: int
    state: LeafRequestState
    requester: str | None
    bond: int | None
    reveal_deadline: int | None
    tx_hash: str | None
    reason: str | None


def _leaf_request(row: sqlite3.Row) -> LeafRequestRow:
    return LeafRequestRow(
        request_id=bytes(row["request_id"]),
        batch_id=int(row["batch_id"]),
        index=int(row["leaf_index"]),
        model_id=bytes(row["model_id"]),
        node=row["node"],
        challenge_deadline=int(row["challenge_deadline"]),
        state=LeafRequestState(row["state"]),
        requester=row["requester"],
        bond=_opt_int(row["bond"]),
        reveal_deadline=_opt_int(row["reveal_deadline"]),
        tx_hash=row["tx_hash"],
        reason=row["reason"],
    )


#: Job states that mean this challenger sent a dispute (kept across a reorg).
_DISPUTED_SQL = ", ".join(
    f"'{s.value}'"
    for s in (JobState.DISPUTE_SENT, JobState.DISPUTE_OPEN, JobState.WON, JobState.LOST)
)
#: Claim states that mean the claim transaction was sent (kept across a reorg).
_CLAIM_SENT_SQL = "'sending', 'open', 'collected', 'forfeited'"


@dataclass(frozen=True)
class RollbackReport:
    """What :meth:`Store.forget_after` did after a reorg below the confirmation depth."""

    fork: int
    jobs: int
    batches: int
    requests: int
    #: Rows acted on (dispute, claim or leaf request sent; batch fetched): kept, marked.
    kept_jobs: int
    kept_batches: int
    #: LeafRevealed events forgotten (their leaf requests reopened, unsent leaf jobs deleted).
    reveals: int = 0


_JOB_COLS = (
    "job_key, kind, ref, job_id, model_id, node, commit_block, challenge_deadline, state, "
    "input_q, output_q, input_hash, output_hash, merkle_proof, reason, tx_hash, bond, "
    "proof_deadline, leaf_index, vrf_proof, seen_at"
)
_LR_COLS = (
    "request_id, batch_id, leaf_index, model_id, node, challenge_deadline, state, requester, "
    "bond, reveal_deadline, tx_hash, reason"
)
_BATCH_COLS = (
    "batch_id, model_id, node, root, count, uri, commit_block, challenge_deadline, state, "
    "attempts, last_error, failed_at, next_attempt_at, invalid_attempts, withheld, seen_at"
)


def missed_reason(job: JobRow, otherwise: str) -> str:
    """The ``missed`` reason of ``job`` whose window closed: ``MISSED_SEEN_LATE`` when it was
    first recorded at or after its deadline (a transaction sent then lands in a later block, past
    ``block.timestamp <= deadline``), else ``otherwise`` (the step it missed)."""
    if job.seen_at is not None and job.seen_at >= job.challenge_deadline:
        return MISSED_SEEN_LATE
    return otherwise


def _ints(text: str | None) -> list[int] | None:
    return None if text is None else [int(v) for v in json.loads(text)]


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _job(row: sqlite3.Row) -> JobRow:
    proof = row["merkle_proof"]
    return JobRow(
        job_key=bytes(row["job_key"]),
        kind=JobKind(row["kind"]),
        ref=int(row["ref"]),
        job_id=int(row["job_id"]),
        model_id=bytes(row["model_id"]),
        node=row["node"],
        commit_block=int(row["commit_block"]),
        challenge_deadline=int(row["challenge_deadline"]),
        state=JobState(row["state"]),
        input_q=_ints(row["input_q"]),
        output_q=_ints(row["output_q"]),
        input_hash=_opt_bytes(row["input_hash"]),
        output_hash=_opt_bytes(row["output_hash"]),
        merkle_proof=None if proof is None else [bytes.fromhex(h) for h in json.loads(proof)],
        reason=row["reason"],
        tx_hash=row["tx_hash"],
        bond=_opt_int(row["bond"]),
        proof_deadline=_opt_int(row["proof_deadline"]),
        leaf_index=_opt_int(row["leaf_index"]),
        vrf_proof=row["vrf_proof"],
        seen_at=_opt_int(row["seen_at"]),
    )


def _batch(row: sqlite3.Row) -> BatchRow:
    return BatchRow(
        batch_id=int(row["batch_id"]),
        model_id=bytes(row["model_id"]),
        node=row["node"],
        root=bytes(row["root"]),
        count=int(row["count"]),
        uri=row["uri"],
        commit_block=int(row["commit_block"]),
        challenge_deadline=int(row["challenge_deadline"]),
        state=BatchState(row["state"]),
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        failed_at=_opt_int(row["failed_at"]),
        next_attempt_at=_opt_int(row["next_attempt_at"]),
        invalid_attempts=int(row["invalid_attempts"] or 0),
        withheld=bool(row["withheld"]),
        seen_at=_opt_int(row["seen_at"]),
    )


class Store:
    """SQLite (WAL) state shared with the log follower's connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # Rows are read by column name (sqlite3.Row still unpacks like a tuple).
        self.conn.row_factory = sqlite3.Row
        self.conn.executescript(_SCHEMA)
        counted = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'ch_jobs_count_ins'"
        ).fetchone()
        self.conn.executescript(_COUNT_SCHEMA)
        if counted is None:  # a database from before the counts: count its rows once
            with self.transaction() as conn:
                conn.execute("DELETE FROM ch_state_counts")
                conn.execute(
                    "INSERT INTO ch_state_counts(state, n) "
                    "SELECT state, COUNT(*) FROM ch_jobs GROUP BY state"
                )
        # Databases from before leaves by position gain the new columns.
        for table, column, kind in (
            ("ch_jobs", "leaf_index", "INTEGER"),
            ("ch_jobs", "vrf_proof", "TEXT"),
            ("ch_batches", "failed_at", "INTEGER"),
            ("ch_batches", "next_attempt_at", "INTEGER"),
            ("ch_batches", "invalid_attempts", "INTEGER"),
            ("ch_batches", "withheld", "INTEGER"),
            ("ch_requests", "block", "INTEGER"),
            ("ch_jobs", "reorg_fork", "INTEGER"),
            ("ch_batches", "reorg_fork", "INTEGER"),
            ("ch_reveals", "block", "INTEGER"),
            ("ch_jobs", "seen_at", "INTEGER"),
            ("ch_batches", "seen_at", "INTEGER"),
        ):
            cols = {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})").fetchall()}
            if column not in cols:
                self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """An IMMEDIATE transaction (the connection is in autocommit mode otherwise)."""
        return transaction(self.conn)

    # -- recording (called inside the follower's transaction) -------------------------------

    @staticmethod
    def record_request(
        conn: sqlite3.Connection,
        job_id: int,
        model_id: bytes,
        input_q: Sequence[int],
        block: int | None = None,
    ) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO ch_requests(job_id, model_id, input_q, block) "
            "VALUES (?, ?, ?, ?)",
            (str(job_id), model_id, json.dumps([int(v) for v in input_q]), block),
        )

    @staticmethod
    def forget_after(conn: sqlite3.Connection, fork: int) -> RollbackReport:
        """Undo what was recorded from blocks after ``fork`` (a reorg replaced them; runs in
        the follower's transaction, before the replacing blocks are handled).

        Rows this challenger has not acted on are deleted, so the replay records them afresh
        with the new commit block, seed and deadline: requests, on-chain jobs with no dispute
        and no claim sent (their planned, unclaimable or missed claim rows go too), batches
        not fetched with no leaf request sent (and their planned leaf requests). Rows it
        acted on (a dispute, a claim or a leaf request sent; a fetched batch, whose leaves
        were decided) are kept and marked ``reorg_fork``: every send re-reads the job on
        chain first (a claim whose job's commit block moved is never sent with its stale
        proof: ``challenger.claims``). Reveals from those blocks are forgotten and their leaf
        requests followed again (:func:`_forget_reveals`)."""
        acted_job = (
            f"(j.state IN ({_DISPUTED_SQL}) OR j.tx_hash IS NOT NULL OR EXISTS (SELECT 1 FROM "
            f"ch_claims c WHERE c.job_key = j.job_key AND c.state IN ({_CLAIM_SENT_SQL})))"
        )
        onchain = f"j.commit_block > ? AND j.kind = {int(JobKind.ONCHAIN)}"
        conn.execute(
            f"DELETE FROM ch_claims WHERE job_key IN (SELECT j.job_key FROM ch_jobs j WHERE "
            f"{onchain} AND NOT {acted_job})",
            (fork,),
        )
        jobs = conn.execute(
            f"DELETE FROM ch_jobs AS j WHERE {onchain} AND NOT {acted_job}", (fork,)
        ).rowcount
        kept_jobs = conn.execute(
            "UPDATE ch_jobs SET reorg_fork = ? WHERE commit_block > ?", (fork, fork)
        ).rowcount
        acted_batch = (
            f"(b.state = '{BatchState.FETCHED.value}' OR EXISTS (SELECT 1 FROM ch_leaf_requests "
            f"r WHERE r.batch_id = b.batch_id AND r.state != '{LeafRequestState.PLANNED.value}'))"
        )
        gone = conn.execute(
            f"SELECT batch_id, count FROM ch_batches AS b WHERE b.commit_block > ? AND NOT "
            f"{acted_batch}",
            (fork,),
        ).fetchall()
        for batch_id, _count in gone:
            conn.execute("DELETE FROM ch_leaf_requests WHERE batch_id = ?", (batch_id,))
            conn.execute("DELETE FROM ch_batches WHERE batch_id = ?", (batch_id,))
        kept_batches = conn.execute(
            "UPDATE ch_batches SET reorg_fork = ? WHERE commit_block > ?", (fork, fork)
        ).rowcount
        requests = conn.execute("DELETE FROM ch_requests WHERE block > ?", (fork,)).rowcount
        reveals = _forget_reveals(conn, fork)
        # The replay counts what it records again.
        _bump(conn, "jobs_seen", -(jobs + sum(int(c) for _, c in gone)))
        _bump(conn, "batches_seen", -len(gone))
        return RollbackReport(
            fork=fork,
            jobs=jobs,
            batches=len(gone),
            requests=requests,
            kept_jobs=kept_jobs,
            kept_batches=kept_batches,
            reveals=reveals,
        )

    @staticmethod
    def record_onchain_commit(
        conn: sqlite3.Connection,
        *,
        job_key: bytes,
        job_id: int,
        node: str,
        output_q: Sequence[int],
        output_hash: bytes,
        challenge_deadline: int,
        commit_block: int,
        model_id: bytes | None = None,
        seen_at: int | None = None,
    ) -> bool:
        """Record a ResultCommitted; the model and input come from the recorded request
        (``seen_at``: the chain time it was recorded at, :attr:`JobRow.seen_at`).

        Returns False (and records nothing) when the request is unknown and no ``model_id``
        is given: the caller then looks the job up on chain.
        """
        req = conn.execute(
            "SELECT model_id, input_q FROM ch_requests WHERE job_id = ?", (str(job_id),)
        ).fetchone()
        if req is None and model_id is None:
            return False
        cur = conn.execute(
            f"INSERT OR IGNORE INTO ch_jobs({_JOB_COLS}, updated_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
            "?, ?)",
            (
                job_key,
                int(JobKind.ONCHAIN),
                str(job_id),
                str(job_id),
                req[0] if req is not None else model_id,
                node,
                commit_block,
                challenge_deadline,
                JobState.SEEN.value,
                req[1] if req is not None else None,
                json.dumps([int(v) for v in output_q]),
                output_hash,
                seen_at,
                time.time(),
            ),
        )
        if cur.rowcount:
            _bump(conn, "jobs_seen", 1)
        return True

    @staticmethod
    def record_batch(
        conn: sqlite3.Connection,
        *,
        batch_id: int,
        model_id: bytes,
        node: str,
        root: bytes,
        count: int,
        uri: str,
        challenge_deadline: int,
        commit_block: int,
        seen_at: int | None = None,
    ) -> None:
        """Record a BatchCommitted (``seen_at``: the chain time it was recorded at,
        :attr:`BatchRow.seen_at`)."""
        cur = conn.execute(
            f"INSERT OR IGNORE INTO ch_batches({_BATCH_COLS}, updated_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, NULL, 0, 0, ?, ?)",
            (
                str(batch_id),
                model_id,
                node,
                root,
                count,
                uri,
                commit_block,
                challenge_deadline,
                BatchState.SEEN.value,
                seen_at,
                time.time(),
            ),
        )
        if cur.rowcount:
            _bump(conn, "batches_seen", 1)
            _bump(conn, "jobs_seen", count)

    # -- queries ----------------------------------------------------------------------------

    def request_input(self, job_id: int) -> list[int] | None:
        row = self.conn.execute(
            "SELECT input_q FROM ch_requests WHERE job_id = ?", (str(job_id),)
        ).fetchone()
        return None if row is None else _ints(row[0])

    def job(self, job_key: bytes) -> JobRow | None:
        row = self.conn.execute(
            f"SELECT {_JOB_COLS} FROM ch_jobs WHERE job_key = ?", (job_key,)
        ).fetchone()
        return None if row is None else _job(row)

    def jobs(self, *states: JobState) -> list[JobRow]:
        marks = ",".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT {_JOB_COLS} FROM ch_jobs WHERE state IN ({marks}) "
            "ORDER BY commit_block, job_key",
            [s.value for s in states],
        ).fetchall()
        return [_job(r) for r in rows]

    def missed_jobs(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The ``missed`` jobs (at most ``limit``, oldest commitment first), JSON-ready, each
        with what is needed to tell why: its kind (``onchain``, ``batch_leaf``, or
        ``revealed_leaf``: made from a LeafRevealed, its deadline the reveal's dispute deadline),
        commit block, deadline, when this challenger first recorded it (``seen_at``, chain time)
        and when it was marked (``missed_at``, wall time), and the reason."""
        rows = self.conn.execute(
            "SELECT j.job_key, j.kind, j.ref, j.job_id, j.leaf_index, j.model_id, j.node, "
            "j.commit_block, j.challenge_deadline, j.seen_at, j.reason, j.updated_at, "
            "j.reorg_fork, EXISTS (SELECT 1 FROM ch_reveals v WHERE v.request_id = j.job_key) "
            "AS revealed FROM ch_jobs j WHERE j.state = ? ORDER BY j.commit_block, j.job_key "
            "LIMIT ?",
            (JobState.MISSED.value, limit),
        ).fetchall()
        out: list[dict[str, Any]] = []
        for r in rows:
            kind = JobKind(r["kind"])
            label = "onchain" if kind is JobKind.ONCHAIN else "batch_leaf"
            out.append(
                {
                    "job_key": "0x" + bytes(r["job_key"]).hex(),
                    "kind": "revealed_leaf" if r["revealed"] else label,
                    "ref": int(r["ref"]),
                    "job_id": int(r["job_id"]),
                    "leaf_index": _opt_int(r["leaf_index"]),
                    "model_id": "0x" + bytes(r["model_id"]).hex(),
                    "node": r["node"],
                    "commit_block": int(r["commit_block"]),
                    "challenge_deadline": int(r["challenge_deadline"]),
                    "seen_at": _opt_int(r["seen_at"]),
                    "missed_at": float(r["updated_at"]),
                    "reason": r["reason"],
                    "reorg_fork": _opt_int(r["reorg_fork"]),
                }
            )
        return out

    def missed_by_reason(self) -> dict[str, int]:
        """``missed`` jobs counted by reason (all of them, however many)."""
        rows = self.conn.execute(
            "SELECT COALESCE(reason, ''), COUNT(*) FROM ch_jobs WHERE state = ? GROUP BY 1",
            (JobState.MISSED.value,),
        ).fetchall()
        return {str(reason): int(n) for reason, n in rows}

    def batches(self, *states: BatchState) -> list[BatchRow]:
        marks = ",".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT {_BATCH_COLS} FROM ch_batches WHERE state IN ({marks}) "
            "ORDER BY commit_block, CAST(batch_id AS INTEGER)",
            [s.value for s in states],
        ).fetchall()
        return [_batch(r) for r in rows]

    def state_counts(self) -> dict[str, int]:
        """Jobs by state (kept by triggers: no scan), batch leaves not sampled included in
        ``skipped`` (counted, not stored)."""
        rows = self.conn.execute("SELECT state, n FROM ch_state_counts WHERE n > 0").fetchall()
        counts = {str(state): int(n) for state, n in rows}
        leaves = self.conn.execute(
            "SELECT value FROM ch_counters WHERE name = ?", (LEAVES_SKIPPED,)
        ).fetchone()
        if leaves is not None and int(leaves[0]):
            skipped = JobState.SKIPPED.value
            counts[skipped] = counts.get(skipped, 0) + int(leaves[0])
        return counts

    def counters(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT name, value FROM ch_counters").fetchall()
        return {str(name): int(value) for name, value in rows}

    def bump(self, name: str, by: int = 1) -> None:
        _bump(self.conn, name, by)

    # -- transitions ------------------------------------------------------------------------

    def transition(self, job_key: bytes, to: JobState, **fields: Any) -> None:
        """Move ``job_key`` to ``to``; :class:`IllegalTransition` if its state does not lead
        there (it already moved on: a replay, another actor first)."""
        _transition(self.conn, job_key, to, **fields)

    @staticmethod
    def transition_in(conn: sqlite3.Connection, job_key: bytes, to: JobState) -> None:
        """:meth:`transition` on ``conn`` (inside the follower's transaction)."""
        _transition(conn, job_key, to)

    def fetched_batch(
        self,
        batch: BatchRow,
        leaves: Sequence[tuple[Leaf, bool]],
        vrf_proofs: Mapping[int, str] | None = None,
        seen_at: int | None = None,
    ) -> bool:
        """Record a batch's checked leaves (each with its sampling decision), atomically;
        ``vrf_proofs`` (position -> stored proof text) are kept with the sampled leaves;
        ``seen_at``: the chain time its leaves were first seen (:attr:`JobRow.seen_at`): the
        batch's own (:attr:`BatchRow.seen_at`), not the time its listing came back.

        A leaf marked ``outside`` the model's domain is recorded ``undisputable`` (with the
        reason), sampled or not. False (nothing recorded) if the batch already left ``seen``."""
        from spotcheck.encoding import batch_leaf_key

        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE ch_batches SET state = ?, updated_at = ? WHERE batch_id = ? AND state = ?",
                (BatchState.FETCHED.value, time.time(), str(batch.batch_id), BatchState.SEEN.value),
            )
            if not cur.rowcount:
                return False
            skipped = 0
            for leaf, sampled in leaves:
                if leaf.outside is not None:
                    # Outside the model's domain: never disputed, whatever the sample; its
                    # data is kept as the record of what the node committed.
                    _insert_leaf_job(
                        conn,
                        job_key=batch_leaf_key(batch.batch_id, leaf.index),
                        batch=batch,
                        leaf=leaf,
                        state=JobState.UNDISPUTABLE,
                        full=True,
                        challenge_deadline=batch.challenge_deadline,
                        proof_known=sampled,
                        reason=leaf.outside,
                        seen_at=seen_at,
                    )
                    continue
                if not sampled:  # no work: counted, not stored (issue 14)
                    skipped += 1
                    continue
                _insert_leaf_job(
                    conn,
                    job_key=batch_leaf_key(batch.batch_id, leaf.index),
                    batch=batch,
                    leaf=leaf,
                    state=JobState.SAMPLED,
                    full=True,
                    challenge_deadline=batch.challenge_deadline,
                    vrf_proof=(vrf_proofs or {}).get(leaf.index),
                    seen_at=seen_at,
                )
            _bump(conn, LEAVES_SKIPPED, skipped)
        return True

    def batch_attempt_failed(
        self,
        batch_id: int,
        error: str,
        *,
        failed_at: int | None = None,
        next_attempt_at: int | None = None,
        invalid: bool = False,
    ) -> int:
        """Count a failed fetch (started at chain time ``failed_at``; the next one is due at
        ``next_attempt_at``; ``invalid``: the node answered with bytes that are not the
        committed listing); returns the attempt count (1 on the first failure)."""
        self.conn.execute(
            "UPDATE ch_batches SET attempts = attempts + 1, last_error = ?, updated_at = ?, "
            "failed_at = ?, next_attempt_at = ?, "
            "invalid_attempts = COALESCE(invalid_attempts, 0) + ? WHERE batch_id = ? AND state = ?",
            (
                error[:500],
                time.time(),
                failed_at,
                next_attempt_at,
                int(invalid),
                str(batch_id),
                BatchState.SEEN.value,
            ),
        )
        row = self.conn.execute(
            "SELECT attempts FROM ch_batches WHERE batch_id = ?", (str(batch_id),)
        ).fetchone()
        return int(row[0]) if row else 0

    def close_batch(self, batch_id: int, to: BatchState) -> bool:
        """``seen -> to`` (not_judged, expired); False if the batch already moved on."""
        cur = self.conn.execute(
            "UPDATE ch_batches SET state = ?, updated_at = ? WHERE batch_id = ? AND state = ?",
            (to.value, time.time(), str(batch_id), BatchState.SEEN.value),
        )
        return bool(cur.rowcount)

    def batch_unavailable(self, batch: BatchRow, sampled: Sequence[int] = ()) -> bool:
        """``seen -> unavailable`` and one planned leaf request per sampled position, atomically.

        Counted once: ``listings_invalid`` if any attempt was answered with a listing that is
        not the committed one (``batch.invalid_attempts``), ``batches_unavailable`` otherwise.
        Not ``batches_withheld``: that takes an unrevealed leaf request (:meth:`report_withheld`).
        """
        from spotcheck.encoding import batch_leaf_key

        with self.transaction() as conn:
            cur = conn.execute(
                "UPDATE ch_batches SET state = ?, updated_at = ? WHERE batch_id = ? AND state = ?",
                (
                    BatchState.UNAVAILABLE.value,
                    time.time(),
                    str(batch.batch_id),
                    BatchState.SEEN.value,
                ),
            )
            if not cur.rowcount:
                return False
            for index in sampled:
                conn.execute(
                    f"INSERT OR IGNORE INTO ch_leaf_requests({_LR_COLS}, updated_at) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL, NULL, ?)",
                    (
                        batch_leaf_key(batch.batch_id, index),
                        str(batch.batch_id),
                        index,
                        batch.model_id,
                        batch.node,
                        batch.challenge_deadline,
                        LeafRequestState.PLANNED.value,
                        time.time(),
                    ),
                )
            invalid = batch.invalid_attempts > 0
            _bump(conn, "listings_invalid" if invalid else "batches_unavailable", 1)
        return True

    def report_withheld(self) -> list[tuple[BatchRow, LeafRequestRow]]:
        """Batches now proven withheld, each returned (and counted ``batches_withheld``) once.

        Proven: a leaf request this challenger planned on the batch (sent by us, or adopted
        when another challenger's landed first) ended ``slashed``, i.e. the node did not
        reveal the leaf by its reveal deadline. Marking and counting are one transaction, so a
        restart neither loses nor repeats a report. Returns each batch with one such request.
        """
        query = (
            f"SELECT {_BATCH_COLS} FROM ch_batches WHERE COALESCE(withheld, 0) = 0 AND "
            "state = ? AND batch_id IN (SELECT batch_id FROM ch_leaf_requests WHERE state = ?) "
            "ORDER BY CAST(batch_id AS INTEGER)"
        )
        args = (BatchState.UNAVAILABLE.value, LeafRequestState.SLASHED.value)
        if not self.conn.execute(query, args).fetchone():
            return []  # the usual case: no write transaction
        with self.transaction() as conn:
            rows = conn.execute(query, args).fetchall()
            out: list[tuple[BatchRow, LeafRequestRow]] = []
            for row in rows:
                batch = _batch(row)
                req = conn.execute(
                    f"SELECT {_LR_COLS} FROM ch_leaf_requests WHERE batch_id = ? AND state = ? "
                    "ORDER BY leaf_index LIMIT 1",
                    (str(batch.batch_id), LeafRequestState.SLASHED.value),
                ).fetchone()
                conn.execute(
                    "UPDATE ch_batches SET withheld = 1, updated_at = ? WHERE batch_id = ?",
                    (time.time(), str(batch.batch_id)),
                )
                _bump(conn, "batches_withheld", 1)
                out.append((dataclasses.replace(batch, withheld=True), _leaf_request(req)))
        return out

    # -- leaf requests ----------------------------------------------------------------------

    def leaf_requests(self, *states: LeafRequestState) -> list[LeafRequestRow]:
        marks = ",".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT {_LR_COLS} FROM ch_leaf_requests WHERE state IN ({marks}) "
            "ORDER BY challenge_deadline, CAST(batch_id AS INTEGER), leaf_index",
            [s.value for s in states],
        ).fetchall()
        return [_leaf_request(r) for r in rows]

    def leaf_request(self, request_id: bytes) -> LeafRequestRow | None:
        row = self.conn.execute(
            f"SELECT {_LR_COLS} FROM ch_leaf_requests WHERE request_id = ?", (request_id,)
        ).fetchone()
        return None if row is None else _leaf_request(row)

    def leaf_request_summary(self) -> dict[str, int]:
        """Leaf requests: opened by us, revealed, settled (node slashed), and still pending."""
        counts = self.leaf_request_counts()
        (ours,) = self.conn.execute(
            "SELECT COUNT(*) FROM ch_leaf_requests WHERE ours = 1"
        ).fetchone()
        return {
            "opened": int(ours),
            "revealed": counts.get(LeafRequestState.REVEALED.value, 0),
            "settled": counts.get(LeafRequestState.SLASHED.value, 0),
            "pending": sum(
                counts.get(s.value, 0)
                for s in (
                    LeafRequestState.PLANNED,
                    LeafRequestState.SENT,
                    LeafRequestState.OPEN,
                    LeafRequestState.FOREIGN,
                )
            ),
            "missed": counts.get(LeafRequestState.MISSED.value, 0),
            "preempted": counts.get(LeafRequestState.PREEMPTED.value, 0),
            "reported_dry_run": counts.get(LeafRequestState.REPORTED.value, 0),
        }

    def leaf_request_counts(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT state, COUNT(*) FROM ch_leaf_requests GROUP BY state"
        ).fetchall()
        return {str(state): int(n) for state, n in rows}

    def leaf_request_transition(
        self, request_id: bytes, to: LeafRequestState, **fields: Any
    ) -> None:
        """Move a leaf request to ``to``; :class:`IllegalTransition` if its state does not lead
        there (as for jobs)."""
        cols: dict[str, Any] = {}
        for name, value in fields.items():
            if name not in {"requester", "bond", "reveal_deadline", "tx_hash", "reason", "ours"}:
                raise StateError(f"unknown leaf request field {name}")
            if name == "bond" and value is not None:
                value = str(value)
            elif name == "ours":
                value = int(bool(value))
            cols[name] = value
        allowed = [s.value for s in LEAF_REQUEST_TRANSITIONS[to]]
        key = ("request_id", request_id)
        move(self.conn, "ch_leaf_requests", key, allowed, to.value, state_column="state", **cols)

    @staticmethod
    def record_reveal(
        conn: sqlite3.Connection,
        *,
        request_id: bytes,
        batch_id: int,
        index: int,
        job_id: int,
        input_q: Sequence[int],
        output_q: Sequence[int],
        input_hash: bytes,
        output_hash: bytes,
        dispute_deadline: int,
        tx_hash: str | None = None,
        block: int | None = None,
    ) -> None:
        """A LeafRevealed event (inside the follower's transaction), for any batch we know;
        ``block`` is the event's (a reorg replacing it forgets the reveal)."""
        known = conn.execute(
            "SELECT 1 FROM ch_batches WHERE batch_id = ?", (str(batch_id),)
        ).fetchone()
        if known is None:
            return
        conn.execute(
            "INSERT OR IGNORE INTO ch_reveals(request_id, batch_id, leaf_index, job_id, input_q, "
            "output_q, input_hash, output_hash, dispute_deadline, tx_hash, merkle_proof, block) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            (
                request_id,
                str(batch_id),
                index,
                str(job_id),
                json.dumps([int(v) for v in input_q]),
                json.dumps([int(v) for v in output_q]),
                input_hash,
                output_hash,
                dispute_deadline,
                tx_hash,
                block,
            ),
        )

    def set_reveal_proof(self, request_id: bytes, proof: Sequence[bytes]) -> None:
        self.conn.execute(
            "UPDATE ch_reveals SET merkle_proof = ? WHERE request_id = ?",
            (json.dumps([p.hex() for p in proof]), request_id),
        )
        self.conn.execute(
            "UPDATE ch_jobs SET merkle_proof = ? WHERE job_key = ?",
            (json.dumps([p.hex() for p in proof]), request_id),
        )

    def reveal_tx(self, request_id: bytes) -> str | None:
        row = self.conn.execute(
            "SELECT tx_hash FROM ch_reveals WHERE request_id = ?", (request_id,)
        ).fetchone()
        return None if row is None else row[0]

    def adopt_reveals(self, seen_at: int | None = None) -> list[LeafRequestRow]:
        """Every leaf request of ours with a recorded reveal becomes a ``sampled`` job, once
        (``seen_at``: the chain time of this adoption, :attr:`JobRow.seen_at`)."""
        pending = (
            LeafRequestState.PLANNED,
            LeafRequestState.SENT,
            LeafRequestState.OPEN,
            LeafRequestState.FOREIGN,
        )
        marks = ",".join("?" * len(pending))
        rows = self.conn.execute(
            f"SELECT r.request_id FROM ch_leaf_requests r JOIN ch_reveals v "
            f"ON v.request_id = r.request_id WHERE r.state IN ({marks})",
            [s.value for s in pending],
        ).fetchall()
        adopted: list[LeafRequestRow] = []
        for (request_id,) in rows:
            with self.transaction() as conn:
                req = self.leaf_request(bytes(request_id))
                v = conn.execute(
                    "SELECT job_id, input_q, output_q, input_hash, output_hash, "
                    "dispute_deadline, merkle_proof FROM ch_reveals WHERE request_id = ?",
                    (request_id,),
                ).fetchone()
                batch = self.batch(int(req.batch_id)) if req is not None else None
                if req is None or batch is None:
                    continue
                try:
                    self.leaf_request_transition(req.request_id, LeafRequestState.REVEALED)
                except IllegalTransition:
                    continue
                proof = None if v[6] is None else [bytes.fromhex(h) for h in json.loads(v[6])]
                leaf = Leaf(
                    req.index,
                    int(v[0]),
                    _ints(v[1]) or [],
                    _ints(v[2]) or [],
                    bytes(v[3]),
                    bytes(v[4]),
                    proof or [],
                )
                _insert_leaf_job(
                    conn,
                    job_key=req.request_id,
                    batch=batch,
                    leaf=leaf,
                    state=JobState.SAMPLED,
                    full=True,
                    challenge_deadline=int(v[5]),
                    proof_known=proof is not None,
                    seen_at=seen_at,
                )
                adopted.append(req)
        return adopted

    def batch(self, batch_id: int) -> BatchRow | None:
        row = self.conn.execute(
            f"SELECT {_BATCH_COLS} FROM ch_batches WHERE batch_id = ?", (str(batch_id),)
        ).fetchone()
        return None if row is None else _batch(row)

    def record_withdrawal(self, tx_hash: str, amount: int) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO ch_withdrawals(tx_hash, amount, at) VALUES (?, ?, ?)",
            (tx_hash, str(amount), time.time()),
        )

    def withdrawn_total(self) -> int:
        rows = self.conn.execute("SELECT amount FROM ch_withdrawals").fetchall()
        return sum(int(r[0]) for r in rows)


class ClaimState(enum.StrEnum):
    """A paid-check claim (``CheckPool``) on an on-chain job (``ch_claims``) or a batch leaf
    (``ch_leaf_claims``: ``claimLeaves``, paid from the node's check deposit) we sampled and
    found correct; for a leaf, "the job" below is the leaf (final: its batch Final and the
    leaf never invalidated).

    ```
     planned ──> sending ──> open ──┬─> collected   (the job became final: reward paid)
        │  ^        │               └─> forfeited   (the job ended invalid: collateral lost)
        │  └────────┘ (not on chain after the resend grace: decide again)
        └─> missed  (window closed, seed unavailable, refused by the pool)
    ```

    ``sending`` is written (with the head block) before the claim transaction is sent, and a
    claim in ``sending`` is never sent again until the chain shows it absent for
    ``resend_after_blocks``: a restart between send and receipt adopts the claim from
    ``claimOf`` instead of sending a second one (which would revert the whole batch).
    """

    PLANNED = "planned"
    SENDING = "sending"
    OPEN = "open"
    COLLECTED = "collected"
    FORFEITED = "forfeited"
    MISSED = "missed"
    #: Sampled at our rate but not at the pool's (or the model has no check terms): never sent.
    UNCLAIMABLE = "unclaimable"


CLAIM_TRANSITIONS: dict[ClaimState, frozenset[ClaimState]] = {
    ClaimState.SENDING: frozenset({ClaimState.PLANNED}),
    ClaimState.PLANNED: frozenset({ClaimState.SENDING}),
    ClaimState.OPEN: frozenset({ClaimState.PLANNED, ClaimState.SENDING}),
    ClaimState.COLLECTED: frozenset({ClaimState.OPEN}),
    ClaimState.FORFEITED: frozenset({ClaimState.OPEN}),
    ClaimState.MISSED: frozenset({ClaimState.PLANNED, ClaimState.SENDING}),
    #: Planned, then the pool's rate was lowered below the proof's output.
    ClaimState.UNCLAIMABLE: frozenset({ClaimState.PLANNED}),
}


@dataclass(frozen=True)
class ClaimRow:
    job_key: bytes
    job_id: int
    model_id: bytes
    vrf_proof: str
    challenge_deadline: int
    state: ClaimState
    planned_at: int
    sent_block: int | None
    tx_hash: str | None
    payout: int | None
    reason: str | None


_CLAIM_COLS = (
    "job_key, job_id, model_id, vrf_proof, challenge_deadline, state, planned_at, sent_block, "
    "tx_hash, payout, reason"
)


def _claim(row: sqlite3.Row) -> ClaimRow:
    return ClaimRow(
        job_key=bytes(row["job_key"]),
        job_id=int(row["job_id"]),
        model_id=bytes(row["model_id"]),
        vrf_proof=row["vrf_proof"],
        challenge_deadline=int(row["challenge_deadline"]),
        state=ClaimState(row["state"]),
        planned_at=int(row["planned_at"]),
        sent_block=_opt_int(row["sent_block"]),
        tx_hash=row["tx_hash"],
        payout=_opt_int(row["payout"]),
        reason=row["reason"],
    )


C = TypeVar("C")


class ClaimTable(Generic[C]):
    """A table of paid-check claims of a :class:`Store` (same connection): the claim states
    and transition rule (``CLAIM_TRANSITIONS``) are the same for every kind of claim."""

    TABLE: ClassVar[str]
    KEY: ClassVar[str]
    COLS: ClassVar[str]
    ORDER: ClassVar[str]

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn

    @staticmethod
    def parse(row: sqlite3.Row) -> C:
        raise NotImplementedError

    def claims(self, *states: ClaimState) -> list[C]:
        marks = ",".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT {self.COLS} FROM {self.TABLE} WHERE state IN ({marks}) ORDER BY {self.ORDER}",
            [s.value for s in states],
        ).fetchall()
        return [self.parse(r) for r in rows]

    def claim(self, key: bytes) -> C | None:
        row = self.conn.execute(
            f"SELECT {self.COLS} FROM {self.TABLE} WHERE {self.KEY} = ?", (key,)
        ).fetchone()
        return None if row is None else self.parse(row)

    def transition(self, key: bytes, to: ClaimState, **fields: Any) -> None:
        """Move a claim to ``to`` (:class:`IllegalTransition` if its state does not lead there)."""
        cols: dict[str, Any] = {}
        for name, value in fields.items():
            if name not in {"sent_block", "tx_hash", "payout", "reason"}:
                raise StateError(f"unknown claim field {name}")
            cols[name] = str(value) if name == "payout" and value is not None else value
        allowed = [s.value for s in CLAIM_TRANSITIONS[to]]
        move(
            self.conn,
            self.TABLE,
            (self.KEY, key),
            allowed,
            to.value,
            state_column="state",
            **cols,
        )


class ClaimStore(ClaimTable[ClaimRow]):
    """The ``ch_claims`` table of a :class:`Store`: claims on on-chain jobs."""

    TABLE = "ch_claims"
    KEY = "job_key"
    COLS = _CLAIM_COLS
    ORDER = "challenge_deadline, CAST(job_id AS INTEGER)"
    parse = staticmethod(_claim)

    def seed_of(self, job_key: bytes) -> tuple[int, int | None] | None:
        """The recorded commit block of the claim's job and the fork block of a reorg that
        replaced it (None: no reorg), or None when the job row is gone."""
        row = self.conn.execute(
            "SELECT commit_block, reorg_fork FROM ch_jobs WHERE job_key = ?", (job_key,)
        ).fetchone()
        return None if row is None else (int(row[0]), _opt_int(row[1]))

    def unplanned(self) -> list[JobRow]:
        """On-chain jobs we sampled and found correct by the circuit's witness (a match by the
        onnxruntime screen alone is not claimed: it can be outside tau of the circuit), with a
        VRF proof and no claim row."""
        rows = self.conn.execute(
            f"SELECT {_JOB_COLS} FROM ch_jobs j WHERE j.state = ? AND j.kind = ? "
            "AND j.vrf_proof IS NOT NULL AND j.witness_diff IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM ch_claims c WHERE c.job_key = j.job_key) ORDER BY commit_block",
            (JobState.MATCHED.value, int(JobKind.ONCHAIN)),
        ).fetchall()
        return [_job(r) for r in rows]

    def plan(self, job: JobRow, state: ClaimState, planned_at: int, reason: str | None) -> bool:
        """Insert the claim row of ``job`` (``planned``, or ``missed`` with the reason)."""
        assert job.vrf_proof is not None
        cur = self.conn.execute(
            f"INSERT OR IGNORE INTO ch_claims({_CLAIM_COLS}, updated_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?)",
            (
                job.job_key,
                str(job.job_id),
                job.model_id,
                job.vrf_proof,
                job.challenge_deadline,
                state.value,
                planned_at,
                reason,
                time.time(),
            ),
        )
        return bool(cur.rowcount)

    def summary(self) -> dict[str, int]:
        """Claims (on jobs and batch leaves) by outcome and the tokens they moved (base units)."""
        counts: dict[str, int] = {}
        for table in ("ch_claims", "ch_leaf_claims"):  # jobs and batch leaves together
            for state, n in self.conn.execute(
                f"SELECT state, COUNT(*) FROM {table} GROUP BY state"
            ).fetchall():
                counts[str(state)] = counts.get(str(state), 0) + int(n)

        def total(state: ClaimState) -> int:
            rows = self.conn.execute(
                "SELECT payout FROM ch_claims WHERE state = ? AND payout IS NOT NULL UNION ALL "
                "SELECT payout FROM ch_leaf_claims WHERE state = ? AND payout IS NOT NULL",
                (state.value, state.value),
            ).fetchall()
            return sum(int(r[0]) for r in rows)

        sent = sum(
            counts.get(s.value, 0)
            for s in (ClaimState.OPEN, ClaimState.COLLECTED, ClaimState.FORFEITED)
        )
        return {
            "sent": sent,
            "pending": counts.get(ClaimState.PLANNED.value, 0)
            + counts.get(ClaimState.SENDING.value, 0),
            "open": counts.get(ClaimState.OPEN.value, 0),
            "paid": counts.get(ClaimState.COLLECTED.value, 0),
            "forfeited": counts.get(ClaimState.FORFEITED.value, 0),
            "missed": counts.get(ClaimState.MISSED.value, 0),
            "unclaimable": counts.get(ClaimState.UNCLAIMABLE.value, 0),
            #: Base units: rewards collected, and collateral lost to forfeits.
            "payouts": total(ClaimState.COLLECTED),
            "forfeits": total(ClaimState.FORFEITED),
        }


def _insert_leaf_job(
    conn: sqlite3.Connection,
    *,
    job_key: bytes,
    batch: BatchRow,
    leaf: Leaf,
    state: JobState,
    full: bool,
    challenge_deadline: int,
    proof_known: bool = True,
    reason: str | None = None,
    vrf_proof: str | None = None,
    seen_at: int | None = None,
) -> None:
    proof = json.dumps([p.hex() for p in leaf.proof]) if full and proof_known else None
    conn.execute(
        f"INSERT OR IGNORE INTO ch_jobs({_JOB_COLS}, updated_at) VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?, ?, ?)",
        (
            job_key,
            int(JobKind.BATCH),
            str(batch.batch_id),
            str(leaf.job_id),
            batch.model_id,
            batch.node,
            batch.commit_block,
            challenge_deadline,
            state.value,
            json.dumps(leaf.input_q) if full else None,
            json.dumps(leaf.output_q) if full else None,
            leaf.input_hash,
            leaf.output_hash,
            proof,
            reason,
            leaf.index,
            vrf_proof,
            seen_at,
            time.time(),
        ),
    )


def _forget_reveals(conn: sqlite3.Connection, fork: int) -> int:
    """Forget the LeafRevealed events recorded from blocks after ``fork`` (audit A5-5): the
    leaf request each had closed is followed again (``open`` if ours on chain, else
    ``planned``: re-decided, adopting a request found on chain), and the leaf job made from
    it is deleted unless we sent a dispute on it (kept: ``resolve`` re-reads that dispute).
    A reveal the new branch holds again is recorded again by the replay."""
    rows = conn.execute(
        "SELECT v.request_id, r.ours FROM ch_reveals v JOIN ch_leaf_requests r "
        "ON r.request_id = v.request_id WHERE v.block > ? AND r.state = ?",
        (fork, LeafRequestState.REVEALED.value),
    ).fetchall()
    for request_id, ours in rows:
        conn.execute(
            f"DELETE FROM ch_jobs WHERE job_key = ? AND kind = {int(JobKind.BATCH)} AND "
            f"tx_hash IS NULL AND state NOT IN ({_DISPUTED_SQL})",
            (request_id,),
        )
        to = LeafRequestState.OPEN if ours else LeafRequestState.PLANNED
        allowed = [s.value for s in LEAF_REQUEST_TRANSITIONS[to]]
        move(
            conn, "ch_leaf_requests", ("request_id", request_id), allowed, to.value,
            state_column="state",
        )  # fmt: skip
    return conn.execute("DELETE FROM ch_reveals WHERE block > ?", (fork,)).rowcount


def _transition(conn: sqlite3.Connection, job_key: bytes, to: JobState, **fields: Any) -> None:
    allowed = TRANSITIONS.get(to)
    if allowed is None:
        raise StateError(f"no transition leads to {to.value}")
    cols: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in {
            "reason",
            "screen_diff",
            "witness_diff",
            "tx_hash",
            "bond",
            "proof_deadline",
            "input_q",
            "vrf_proof",
        }:
            raise StateError(f"unknown job field {name}")
        if name == "input_q" and value is not None:
            value = json.dumps([int(v) for v in value])
        elif name == "bond" and value is not None:
            value = str(value)
        cols[name] = value
    states = [s.value for s in allowed]
    move(conn, "ch_jobs", ("job_key", job_key), states, to.value, state_column="state", **cols)


def _bump(conn: sqlite3.Connection, name: str, by: int) -> None:
    if by:
        conn.execute(
            "INSERT INTO ch_counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )


@dataclass(frozen=True)
class LeafClaimRow:
    """A paid-check claim on leaf ``index`` of batch ``batch_id`` (``CheckPool.claimLeaves``)."""

    leaf_key: bytes
    batch_id: int
    index: int
    model_id: bytes
    vrf_proof: str
    challenge_deadline: int
    commit_block: int
    state: ClaimState
    planned_at: int
    sent_block: int | None
    tx_hash: str | None
    payout: int | None
    reason: str | None


_LEAF_CLAIM_COLS = (
    "leaf_key, batch_id, leaf_index, model_id, vrf_proof, challenge_deadline, commit_block, "
    "state, planned_at, sent_block, tx_hash, payout, reason"
)


def _leaf_claim(row: sqlite3.Row) -> LeafClaimRow:
    return LeafClaimRow(
        leaf_key=bytes(row["leaf_key"]),
        batch_id=int(row["batch_id"]),
        index=int(row["leaf_index"]),
        model_id=bytes(row["model_id"]),
        vrf_proof=row["vrf_proof"],
        challenge_deadline=int(row["challenge_deadline"]),
        commit_block=int(row["commit_block"]),
        state=ClaimState(row["state"]),
        planned_at=int(row["planned_at"]),
        sent_block=_opt_int(row["sent_block"]),
        tx_hash=row["tx_hash"],
        payout=_opt_int(row["payout"]),
        reason=row["reason"],
    )


class LeafClaimStore(ClaimTable[LeafClaimRow]):
    """The ``ch_leaf_claims`` table: claims on batch leaves."""

    TABLE = "ch_leaf_claims"
    KEY = "leaf_key"
    COLS = _LEAF_CLAIM_COLS
    ORDER = "challenge_deadline, CAST(batch_id AS INTEGER), leaf_index"
    parse = staticmethod(_leaf_claim)

    def unplanned(self) -> list[tuple[JobRow, int]]:
        """Batch leaves we sampled and found correct by the circuit's witness, with a VRF proof
        and no claim row; each with its batch's challenge deadline (the claim window; the
        leaf's own row may hold a revealed leaf's later dispute deadline)."""
        cols = ", ".join(f"j.{c.strip()}" for c in _JOB_COLS.split(","))
        rows = self.conn.execute(
            f"SELECT {cols}, COALESCE(b.challenge_deadline, j.challenge_deadline) AS window_end "
            "FROM ch_jobs j LEFT JOIN ch_batches b ON b.batch_id = j.ref "
            "WHERE j.state = ? AND j.kind = ? AND j.leaf_index IS NOT NULL "
            "AND j.vrf_proof IS NOT NULL AND j.witness_diff IS NOT NULL AND j.reorg_fork IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM ch_leaf_claims c WHERE c.leaf_key = j.job_key) "
            "ORDER BY j.commit_block, j.leaf_index",
            (JobState.MATCHED.value, int(JobKind.BATCH)),
        ).fetchall()
        return [(_job(r), int(r["window_end"])) for r in rows]

    def reorged(self, leaf_key: bytes) -> int | None:
        """The fork block of a reorg that replaced the leaf's batch block (None: none, or the
        leaf row is gone: then 0)."""
        row = self.conn.execute(
            "SELECT reorg_fork FROM ch_jobs WHERE job_key = ?", (leaf_key,)
        ).fetchone()
        return 0 if row is None else _opt_int(row[0])

    def plan(
        self, job: JobRow, deadline: int, state: ClaimState, planned_at: int, reason: str | None
    ) -> bool:
        """Insert the claim row of leaf ``job`` (``planned``, or ``unclaimable`` with why)."""
        assert job.vrf_proof is not None and job.leaf_index is not None
        cur = self.conn.execute(
            f"INSERT OR IGNORE INTO ch_leaf_claims({_LEAF_CLAIM_COLS}, updated_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?)",
            (
                job.job_key,
                str(job.ref),
                job.leaf_index,
                job.model_id,
                job.vrf_proof,
                deadline,
                job.commit_block,
                state.value,
                planned_at,
                reason,
                time.time(),
            ),
        )
        return bool(cur.rowcount)
