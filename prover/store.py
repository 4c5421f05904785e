"""The node's durable state: SQLite (WAL), explicit states, compare-and-set transitions.

Every chain side effect follows the same pattern, so a crash at any point neither repeats
nor forgets it:

1. the *work* is recorded first (a requested job, a served job, an opened dispute), inside
   the same SQLite transaction as the log checkpoint or before the HTTP answer;
2. the *intent* is recorded before the transaction is sent (``committing``, ``defending``),
   with everything needed to send it again byte for byte (the output, the proof, the nonce);
3. the *outcome* is recorded after the receipt (``committed``, ``defended``).

On restart the service reconciles every row still in an intent state with the chain (job
status, ``BatchCommitted`` logs, dispute status) before sending anything again. Transitions
are compare-and-set on the current state (the services' one rule, ``spotcheck.kit.db.move``):
an illegal transition is a :class:`spotcheck.kit.db.IllegalTransition` (a ``StateError``).

States::

    onchain job   requested -> committing -> committed -> final
                  requested | committing -> dropped        (cancelled, expired, bad input)
                  committed -> disputed -> final | invalid
    batch         sealed -> committing -> committed -> final
    served job    pending (no batch) -> in a sealed batch (leaf index stored; a leaf's Merkle
                  proof is rebuilt from the batch's leaves when asked: Store.leaf_proof)
    dispute       open -> proof_ready -> defending -> defended
                  open | proof_ready | defending -> lost   (slashed / deadline passed)
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from prover.transactions import CLOSED_SUFFIX, SentTx
from prover.vectors import pack, pack_rows, unpack
from spotcheck.encoding import from_hex, to_hex
from spotcheck.errors import StateError
from spotcheck.kit.db import move, open_db, transaction
from spotcheck.merkle import MerkleTree

_SERVED_VECTORS = """CREATE TABLE IF NOT EXISTS served_vectors (
    job_id INTEGER PRIMARY KEY REFERENCES served_jobs(job_id),
    input_q BLOB NOT NULL,
    output_q BLOB NOT NULL
)"""
#: The node's own record of a served job: hashes, leaf and signature as raw bytes (the wire
#: format is hex; these are never shown as they are stored). ``model_id`` stays ``0x`` hex, as
#: in every other table and the kept pending counts.
_SERVED_JOBS = """CREATE TABLE IF NOT EXISTS {name} (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id TEXT NOT NULL,
    input_hash BLOB NOT NULL,
    output_hash BLOB NOT NULL,
    leaf BLOB NOT NULL,
    signature BLOB NOT NULL,
    served_at REAL NOT NULL,
    batch_local_id INTEGER REFERENCES batches(local_id),
    leaf_index INTEGER
)"""
#: A served job with its vectors (what ``Store._served`` reads).
_SERVED = "SELECT * FROM served_jobs JOIN served_vectors USING (job_id)"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS onchain_jobs (
    job_id INTEGER PRIMARY KEY,
    model_id TEXT NOT NULL,
    input_q TEXT NOT NULL,
    commit_deadline INTEGER NOT NULL,
    status TEXT NOT NULL,
    output_q TEXT,
    nonce INTEGER,
    tx_hash TEXT,
    challenge_deadline INTEGER,
    note TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS onchain_jobs_status ON onchain_jobs(status);

CREATE TABLE IF NOT EXISTS batches (
    local_id INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id TEXT NOT NULL,
    root TEXT NOT NULL,
    count INTEGER NOT NULL,
    status TEXT NOT NULL,
    batch_id INTEGER UNIQUE,
    nonce INTEGER,
    tx_hash TEXT,
    challenge_deadline INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_status ON batches(status);

{_SERVED_JOBS.format(name="served_jobs")};
-- Both indexes are partial (issue 14): a served job enters the first, sealing moves it to the
-- second; neither holds an entry per job for the life of the database.
-- The pending jobs of a model in serve order (the batch cutter, sealing).
CREATE INDEX IF NOT EXISTS served_jobs_unbatched ON served_jobs(model_id, job_id)
    WHERE batch_local_id IS NULL;
-- A batch's leaves in order (listings, leaf lookups, proofs, pruning) without a scan.
CREATE INDEX IF NOT EXISTS served_jobs_leaves ON served_jobs(batch_local_id, leaf_index)
    WHERE batch_local_id IS NOT NULL;
-- The vectors (300 KB for a 224x224x3 image) live apart from the row that sealing a batch
-- updates: SQLite rewrites a whole record on UPDATE, blobs included.
{_SERVED_VECTORS};

CREATE TABLE IF NOT EXISTS disputes (
    dispute_id TEXT PRIMARY KEY,
    kind INTEGER NOT NULL,
    ref INTEGER NOT NULL,
    job_id INTEGER NOT NULL,
    proof_deadline INTEGER NOT NULL,
    status TEXT NOT NULL,
    proof TEXT,
    instances TEXT,
    committed_output TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    nonce INTEGER,
    tx_hash TEXT,
    last_error TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS disputes_status ON disputes(status);

-- LeafRequested against this node: the node reveals the leaf before reveal_deadline.
CREATE TABLE IF NOT EXISTS leaf_requests (
    request_id TEXT PRIMARY KEY,
    batch_id INTEGER NOT NULL,
    leaf_index INTEGER NOT NULL,
    reveal_deadline INTEGER NOT NULL,
    status TEXT NOT NULL,
    tx_hash TEXT,
    last_error TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leaf_requests_status ON leaf_requests(status);

-- Every signed transaction, journaled before its broadcast (prover/transactions.py).
CREATE TABLE IF NOT EXISTS transactions (
    tx_hash TEXT PRIMARY KEY,
    intent TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    max_fee TEXT NOT NULL,
    priority_fee TEXT NOT NULL,
    sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS transactions_intent ON transactions(intent);
"""


#: ``IDisputeManager.JobKind.BATCH`` (``spotcheck.chain.JobKind``; not imported: no Ape here).
DISPUTE_KIND_BATCH = 1

#: Tables whose rows are counted per state (``Store.counts``), kept by the triggers below.
_COUNTED = ("onchain_jobs", "batches", "disputes")


def _bump(table: str, status: str, delta: int) -> str:
    return (
        f"INSERT INTO state_counts(tbl, status, n) VALUES('{table}', {status}, {delta})"
        f" ON CONFLICT(tbl, status) DO UPDATE SET n = n + ({delta});"
    )


def _add_pending(c: sqlite3.Connection, model_id: str, delta: int) -> None:
    """Move ``model_id``'s pending-job count by ``delta``, in the caller's transaction: one
    statement per request or seal. (SQLite triggers are per row: at ~5 us of every served job
    the pending-count triggers were the largest cost of a batched request, issue 14.)"""
    c.execute(
        "INSERT INTO pending_jobs(model_id, n) VALUES(?, ?)"
        " ON CONFLICT(model_id) DO UPDATE SET n = n + excluded.n",
        (model_id, delta),
    )


#: Pending-job counts per model, written per statement by the store's only writers of
#: ``served_jobs`` (the two inserts and the seal); served jobs are never deleted (retention
#: drops vectors). The table of the releases that kept them by triggers was ``pending_counts``:
#: a node of such a release finds no ``pending_counts`` here and stops at its first read
#: ("no such table") instead of trusting counts nothing updates any more (audit 8).
_PENDING_TABLE = (
    "CREATE TABLE pending_jobs (model_id TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID"
)
_PENDING_BACKFILL = (
    "INSERT INTO pending_jobs(model_id, n) SELECT model_id, COUNT(*) FROM served_jobs"
    " WHERE batch_local_id IS NULL GROUP BY model_id"
)

#: Counts kept by the same transactions that change the rows (SQLite triggers for the state
#: counts; explicit statements for the pending-job counts, see :func:`_add_pending`): reading
#: them is a few rows, not a scan of every job under the serving lock (issue 14). Created with
#: their back-fill in one transaction (``Store._add_counts``), so a crash leaves no half state.
_COUNTS = [
    "CREATE TABLE state_counts (tbl TEXT NOT NULL, status TEXT NOT NULL,"
    " n INTEGER NOT NULL, PRIMARY KEY (tbl, status)) WITHOUT ROWID",
    *(
        stmt
        for t in _COUNTED
        for stmt in (
            f"CREATE TRIGGER {t}_count_ins AFTER INSERT ON {t} BEGIN"
            f" {_bump(t, 'NEW.status', 1)} END",
            f"CREATE TRIGGER {t}_count_upd AFTER UPDATE OF status ON {t}"
            f" WHEN OLD.status IS NOT NEW.status BEGIN"
            f" {_bump(t, 'OLD.status', -1)} {_bump(t, 'NEW.status', 1)} END",
            f"CREATE TRIGGER {t}_count_del AFTER DELETE ON {t} BEGIN"
            f" {_bump(t, 'OLD.status', -1)} END",
        )
    ),
    *(
        f"INSERT INTO state_counts(tbl, status, n)"
        f" SELECT '{t}', status, COUNT(*) FROM {t} GROUP BY status"
        for t in _COUNTED
    ),
]


class JobState(StrEnum):
    REQUESTED = "requested"
    COMMITTING = "committing"
    COMMITTED = "committed"
    DISPUTED = "disputed"
    FINAL = "final"
    INVALID = "invalid"
    DROPPED = "dropped"


class BatchState(StrEnum):
    SEALED = "sealed"
    COMMITTING = "committing"
    COMMITTED = "committed"
    FINAL = "final"


class DisputeState(StrEnum):
    OPEN = "open"
    PROOF_READY = "proof_ready"
    DEFENDING = "defending"
    DEFENDED = "defended"
    LOST = "lost"
    #: The committed output is outside tau of the circuit's own output: no proof can win, so
    #: the node does not prove (it waits for the settlement and records it as lost).
    UNDEFENDABLE = "undefendable"
    #: The chain's branch holds no such dispute any more (a reorg removed it and its deadline
    #: passed): neither won nor lost. A replayed DisputeOpened reopens it.
    DROPPED = "dropped"


#: Disputes the node still works on (proving or sending the defence).
WORKING_DISPUTES = (DisputeState.OPEN, DisputeState.PROOF_READY, DisputeState.DEFENDING)
#: Disputes not settled yet: the working ones and those no proof can win.
UNRESOLVED_DISPUTES = (*WORKING_DISPUTES, DisputeState.UNDEFENDABLE)


@dataclass(frozen=True)
class OnchainJob:
    job_id: int
    model_id: bytes
    input_q: tuple[int, ...]
    commit_deadline: int
    status: JobState
    output_q: tuple[int, ...] | None
    nonce: int | None
    tx_hash: str | None
    challenge_deadline: int | None
    note: str | None
    #: the request's fee and input hash, from its JobRequested (None in pre-v2 records)
    fee: int | None = None
    input_hash: bytes | None = None


@dataclass(frozen=True, eq=False)
class ServedJob:
    """A job served over HTTP, committed later as a leaf of a batch (vectors: int64 arrays)."""

    job_id: int
    model_id: bytes
    input_q: np.ndarray
    output_q: np.ndarray
    input_hash: bytes
    output_hash: bytes
    leaf: bytes
    signature: bytes
    served_at: float
    batch_local_id: int | None
    leaf_index: int | None


@dataclass(frozen=True)
class Batch:
    local_id: int
    model_id: bytes
    root: bytes
    count: int
    status: BatchState
    batch_id: int | None
    nonce: int | None
    tx_hash: str | None
    challenge_deadline: int | None
    created_at: float
    #: block of the commitBatch the node last saw (None: not known yet)
    commit_block: int | None = None
    #: True once ``batch_id`` was re-read from a BatchCommitted log ``confirmations`` blocks
    #: deep: before that a reorg may still move the batch to another id.
    confirmed: bool = False
    #: The served vectors of this final batch are (being) deleted after the retention: its
    #: listing answers 410.
    pruned: bool = False
    #: Block at which the node saw this batch final, until that is ``confirmations`` deep and
    #: re-read (None: settled, or not final): a reorg may still drop the finalizeBatch.
    final_block: int | None = None


@dataclass(frozen=True)
class Dispute:
    dispute_id: bytes
    kind: int
    ref: int
    job_id: int
    proof_deadline: int
    status: DisputeState
    proof: bytes | None
    instances: tuple[int, ...] | None
    committed_output: tuple[int, ...] | None
    attempts: int
    nonce: int | None
    tx_hash: str | None
    last_error: str | None
    #: position of the disputed leaf in its batch (batch disputes)
    leaf_index: int | None = None


@dataclass(frozen=True)
class LeafRequest:
    request_id: bytes
    batch_id: int
    leaf_index: int
    reveal_deadline: int
    status: str
    tx_hash: str | None
    last_error: str | None


def _ints(text: str | None) -> tuple[int, ...] | None:
    return None if text is None else tuple(int(v) for v in json.loads(text))


def _dump(values: Sequence[int]) -> str:
    # Decimal strings: int256 and field elements do not fit JSON numbers in every reader.
    return json.dumps([str(int(v)) for v in values])


def _check_int64(name: str, value: int) -> int:
    if not 0 <= value < 2**63:
        raise StateError(f"{name} {value} does not fit the node database (needs < 2**63)")
    return value


#: Rows per multi-row ``INSERT`` statement (128 x 7 values, far below SQLite's limit of 32,766):
#: one statement binds many rows, ~2 µs per job less than ``executemany``'s step per row.
_INSERT_CHUNK = 128


def _insert_rows(conn: sqlite3.Connection, head: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``head`` (``INSERT INTO t(columns)``) with ``rows`` as multi-row ``VALUES`` lists."""
    if not rows:
        return
    one = "(" + ",".join("?" * len(rows[0])) + ")"
    for i in range(0, len(rows), _INSERT_CHUNK):
        part = rows[i : i + _INSERT_CHUNK]
        conn.execute(f"{head} VALUES {','.join([one] * len(part))}", [v for r in part for v in r])


class BatchSnapshot:
    """One batch read from a WAL snapshot on a read-only connection of its own: the batch's
    pruned state and its leaves in order, streamed ``chunk`` rows at a time (memory does not
    grow with the batch). Usable from one thread at a time (a streaming response's)."""

    def __init__(self, path: Path, local_id: int) -> None:
        self._conn = sqlite3.connect(
            f"{Path(path).resolve().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
        self._conn.row_factory = sqlite3.Row
        self.local_id = local_id
        try:
            self._conn.execute("BEGIN")  # the snapshot starts at the first read below
            row = self._conn.execute(
                "SELECT pruned_at FROM batches WHERE local_id = ?", (local_id,)
            ).fetchone()
        except BaseException:
            self._conn.close()
            raise
        self.exists = row is not None
        self.pruned = row is not None and row[0] is not None

    def leaves(self, chunk: int = 256) -> Iterator[ServedJob]:
        cur = self._conn.execute(
            f"{_SERVED} WHERE batch_local_id = ? ORDER BY leaf_index", (self.local_id,)
        )
        while rows := cur.fetchmany(chunk):
            for r in rows:
                yield Store._served(r)

    def close(self) -> None:
        with suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")
        self._conn.close()


class Store:
    """Thread-safe access to the node database; one connection, one writer at a time."""

    def __init__(self, path: str | Path, *, fsync_every_commit: bool = False) -> None:
        """Open (and create) the database.

        WAL with ``synchronous=NORMAL`` (the default here) makes every commit durable against a
        crash of the node process, which is what the exactly-once rules above need; only a
        power loss or kernel crash can lose the last commits. ``fsync_every_commit`` closes that
        gap too, at the cost of one fsync per served job.
        """
        self.path = Path(path)
        self._conn = open_db(self.path)
        if not fsync_every_commit:
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._id_lock = threading.Lock()
        self._next_served: int | None = None
        #: Merkle trees of recently sealed or asked batches by local id (a sealed batch never
        #: changes: its proofs are rebuilt from its leaves, and kept for the next leaf asked).
        self._trees: dict[int, MerkleTree] = {}
        with self._lock:
            self._migrate_served_vectors()
            self._migrate_served_blobs()
            # Replaced by the partial indexes of _SCHEMA (state files before issue 14's seal).
            self._conn.execute("DROP INDEX IF EXISTS served_jobs_pending")
            self._conn.execute("DROP INDEX IF EXISTS served_jobs_batch")
            self._conn.executescript(_SCHEMA)
            self._add_columns()
            self._add_counts()

    #: Columns added after the first release: (table, column, type), added when missing.
    _ADDED_COLUMNS = (
        ("onchain_jobs", "fee", "TEXT"),
        ("onchain_jobs", "input_hash", "TEXT"),
        ("disputes", "leaf_index", "INTEGER"),
        ("batches", "commit_block", "INTEGER"),
        ("batches", "confirmed", "INTEGER NOT NULL DEFAULT 0"),
        ("batches", "final_at", "REAL"),
        ("batches", "pruned_at", "REAL"),
        ("batches", "prune_done", "INTEGER NOT NULL DEFAULT 0"),
        ("batches", "final_block", "INTEGER"),
        ("transactions", "raw", "TEXT"),
    )

    def _add_columns(self) -> None:
        for table, column, kind in self._ADDED_COLUMNS:
            have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        self._conn.execute("CREATE INDEX IF NOT EXISTS transactions_nonce ON transactions(nonce)")
        # Final batches whose finalizeBatch is not yet `confirmations` deep (confirm_finals).
        self._conn.execute(
            "CREATE INDEX IF NOT EXISTS batches_final_unsettled ON batches(local_id)"
            " WHERE final_block IS NOT NULL"
        )
        # Final batches whose vectors are still stored: what pruning walks, never the others.
        self._conn.execute(
            "CREATE INDEX IF NOT EXISTS batches_prunable ON batches(local_id)"
            " WHERE status = 'final' AND prune_done = 0"
        )

    def _add_counts(self) -> None:
        """The incremental counts: created (triggers and back-fill from one scan) in one
        transaction the first time a database is opened by a node that keeps them."""
        have = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'state_counts'"
        ).fetchone()
        if have is None:
            with transaction(self._conn) as c:
                for statement in _COUNTS:
                    c.execute(statement)
        self._add_pending_counts()

    def _add_pending_counts(self) -> None:
        """``pending_jobs``, counted from the served jobs (one index scan) when it is missing
        or when a node of an older release ran on this file since (its ``served_pending_*``
        triggers are back: ``pending_jobs`` missed its writes); the old triggers and their
        ``pending_counts`` table go in the same transaction."""
        triggers = [
            r[0]
            for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                " AND name LIKE 'served_pending_%'"
            )
        ]
        have = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pending_jobs'"
        ).fetchone()
        if have is not None and not triggers:
            return
        with transaction(self._conn) as c:
            for name in triggers:
                c.execute(f"DROP TRIGGER {name}")
            c.execute("DROP TABLE IF EXISTS pending_counts")
            c.execute("DROP TABLE IF EXISTS pending_jobs")
            c.execute(_PENDING_TABLE)
            c.execute(_PENDING_BACKFILL)

    def _migrate_served_vectors(self) -> None:
        """Move the vectors of a state file written before ``served_vectors`` existed (they
        were columns of ``served_jobs``) into their own table, in one transaction."""
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(served_jobs)")}
        if "input_q" not in columns:
            return
        with transaction(self._conn) as c:
            c.execute(_SERVED_VECTORS)
            c.execute(
                "INSERT INTO served_vectors(job_id, input_q, output_q)"
                " SELECT job_id, input_q, output_q FROM served_jobs"
            )
            c.execute("ALTER TABLE served_jobs DROP COLUMN input_q")
            c.execute("ALTER TABLE served_jobs DROP COLUMN output_q")

    def _migrate_served_blobs(self) -> None:
        """Rewrite the served jobs of a state file from before issue 14's store (hex text
        hashes, leaf and signature; a Merkle proof per sealed row) in the current layout: raw
        bytes, no stored proof (:meth:`leaf_proof` rebuilds the same proofs from the leaves).
        SQLite's table rebuild, in one transaction: a crash leaves the old table whole."""
        columns = {r[1]: r[2] for r in self._conn.execute("PRAGMA table_info(served_jobs)")}
        if not columns or columns.get("leaf") == "BLOB":
            return
        self._conn.create_function("spotcheck_unhex", 1, from_hex, deterministic=True)
        self._conn.execute("PRAGMA foreign_keys=OFF")  # a rebuild drops the referenced table
        try:
            with transaction(self._conn) as c:
                seq = c.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'served_jobs'"
                ).fetchone()
                c.execute(_SERVED_JOBS.format(name="served_jobs_new"))
                c.execute(
                    "INSERT INTO served_jobs_new(job_id, model_id, input_hash, output_hash,"
                    " leaf, signature, served_at, batch_local_id, leaf_index)"
                    " SELECT job_id, model_id, spotcheck_unhex(input_hash),"
                    " spotcheck_unhex(output_hash), spotcheck_unhex(leaf),"
                    " spotcheck_unhex(signature), served_at, batch_local_id, leaf_index"
                    " FROM served_jobs"
                )
                c.execute("DROP TABLE served_jobs")  # with its indexes and triggers
                c.execute("ALTER TABLE served_jobs_new RENAME TO served_jobs")
                if seq is not None:
                    c.execute(
                        "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'served_jobs'",
                        (seq[0],),
                    )
                bad = c.execute("PRAGMA foreign_key_check").fetchone()
                if bad is not None:
                    raise StateError(f"node database: served jobs rebuild broke a reference {bad}")
        finally:
            self._conn.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction on our connection, or the caller's open transaction on ``conn``."""
        if conn is not None:
            yield conn
            return
        with transaction(self._conn, self._lock) as c:
            yield c

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params).fetchall())

    def _in_states(self, table: str, states: Sequence[str], order_by: str) -> list[sqlite3.Row]:
        marks = ",".join("?" * len(states))
        return self._read(
            f"SELECT * FROM {table} WHERE status IN ({marks}) ORDER BY {order_by}", states
        )

    @staticmethod
    def _cas(
        conn: sqlite3.Connection,
        table: str,
        key_col: str,
        key: object,
        allowed: Sequence[str],
        to: str,
        **fields: Any,
    ) -> None:
        """Move row ``key`` from one of ``allowed`` states to ``to``, setting ``fields``
        (the kit's rule: :class:`spotcheck.kit.db.IllegalTransition` otherwise)."""
        move(conn, table, (key_col, key), allowed, to, **fields)

    # -- on-chain jobs -----------------------------------------------------------------------

    def record_requested(
        self,
        job_id: int,
        model_id: bytes,
        input_q: Sequence[int],
        commit_deadline: int,
        *,
        fee: int | None = None,
        input_hash: bytes | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> bool:
        """Remember a JobRequested naming this node; idempotent (True if it was new)."""
        with self._write(conn) as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO onchain_jobs(job_id, model_id, input_q, commit_deadline,"
                " status, updated_at, fee, input_hash) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _check_int64("jobId", job_id),
                    to_hex(model_id),
                    _dump(input_q),
                    commit_deadline,
                    JobState.REQUESTED,
                    time.time(),
                    None if fee is None else str(fee),
                    None if input_hash is None else to_hex(input_hash),
                ),
            )
            return cur.rowcount == 1

    def commit_intent(self, job_id: int, output_q: Sequence[int], nonce: int | None) -> None:
        """About to send commitResult: pin the output (and nonce) so a retry sends the same."""
        with self._write() as c:
            row = c.execute(
                "SELECT status, output_q FROM onchain_jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
            if row is not None and row["status"] == JobState.COMMITTING:
                if _ints(row["output_q"]) != tuple(int(v) for v in output_q):
                    raise StateError(f"job {job_id}: a different output is already pinned")
                c.execute("UPDATE onchain_jobs SET nonce = ? WHERE job_id = ?", (nonce, job_id))
                return
            self._cas(
                c,
                "onchain_jobs",
                "job_id",
                job_id,
                [JobState.REQUESTED],
                JobState.COMMITTING,
                output_q=_dump(output_q),
                nonce=nonce,
            )

    def mark_committed(self, job_id: int, tx_hash: str | None, challenge_deadline: int) -> None:
        with self._write() as c:
            self._cas(
                c,
                "onchain_jobs",
                "job_id",
                job_id,
                [JobState.COMMITTING],
                JobState.COMMITTED,
                tx_hash=tx_hash,
                challenge_deadline=challenge_deadline,
            )

    def mark_job(self, job_id: int, to: JobState, note: str | None = None) -> None:
        """Terminal and dispute transitions of an on-chain job."""
        allowed: dict[JobState, list[str]] = {
            JobState.DROPPED: [JobState.REQUESTED, JobState.COMMITTING],
            JobState.DISPUTED: [JobState.COMMITTED],
            JobState.FINAL: [JobState.COMMITTED, JobState.DISPUTED],
            JobState.INVALID: [JobState.COMMITTED, JobState.DISPUTED],
        }
        if to not in allowed:
            raise StateError(f"mark_job cannot move a job to {to}")
        with self._write() as c:
            self._cas(c, "onchain_jobs", "job_id", job_id, allowed[to], to, note=note)

    def onchain_job(self, job_id: int) -> OnchainJob | None:
        rows = self._read("SELECT * FROM onchain_jobs WHERE job_id = ?", (job_id,))
        return self._job(rows[0]) if rows else None

    def onchain_jobs(self, *states: JobState) -> list[OnchainJob]:
        rows = self._in_states("onchain_jobs", states, "job_id")
        return [self._job(r) for r in rows]

    @staticmethod
    def _job(r: sqlite3.Row) -> OnchainJob:
        return OnchainJob(
            job_id=r["job_id"],
            model_id=from_hex(r["model_id"]),
            input_q=_ints(r["input_q"]) or (),
            commit_deadline=r["commit_deadline"],
            status=JobState(r["status"]),
            output_q=_ints(r["output_q"]),
            nonce=r["nonce"],
            tx_hash=r["tx_hash"],
            challenge_deadline=r["challenge_deadline"],
            note=r["note"],
            fee=None if r["fee"] is None else int(r["fee"]),
            input_hash=None if r["input_hash"] is None else from_hex(r["input_hash"]),
        )

    # -- served (batched) jobs ---------------------------------------------------------------

    def _allocate_served_id(self) -> int:
        """Next node-assigned jobId (one node process per database; gaps are harmless)."""
        with self._id_lock:
            if self._next_served is None:
                rows = self._read("SELECT MAX(job_id) FROM served_jobs")
                seq = self._read("SELECT seq FROM sqlite_sequence WHERE name = 'served_jobs'")
                last = max(int(rows[0][0] or 0), int(seq[0][0]) if seq else 0)
                self._next_served = last + 1
            job_id = self._next_served
            self._next_served += 1
            return job_id

    def _allocate_served_ids(self, n: int) -> int:
        """First of ``n`` consecutive node-assigned jobIds."""
        first = self._allocate_served_id()
        with self._id_lock:
            assert self._next_served is not None
            self._next_served += n - 1
        return first

    def record_served_many(
        self,
        model_id: bytes,
        inputs_q: np.ndarray,
        outputs_q: np.ndarray,
        input_hashes: Sequence[bytes],
        output_hashes: Sequence[bytes],
        sign: Callable[[list[int]], tuple[list[bytes], bytes]],
    ) -> tuple[list[int], float]:
        """Persist the jobs of one request (rows of ``inputs_q`` / ``outputs_q``) in one
        transaction; returns their consecutive jobIds and the serve time.

        ``sign(job_ids)`` builds the leaves and the one signature over the request's sub-root
        (outside the write lock). Every row stores that signature. The answer is sent only
        after the commit, as for :meth:`record_served`.
        """
        n = len(input_hashes)
        now = time.time()
        first = self._allocate_served_ids(n)
        job_ids = list(range(first, first + n))
        leaves, signature = sign(job_ids)
        mid = to_hex(model_id)
        rows = [
            (j, mid, ih, oh, lf, signature, now)
            for j, ih, oh, lf in zip(job_ids, input_hashes, output_hashes, leaves, strict=True)
        ]
        vectors = list(zip(job_ids, pack_rows(inputs_q), pack_rows(outputs_q), strict=True))
        with self._write() as c:
            _insert_rows(
                c,
                "INSERT INTO served_jobs(job_id, model_id, input_hash, output_hash, leaf,"
                " signature, served_at)",
                rows,
            )
            _insert_rows(c, "INSERT INTO served_vectors(job_id, input_q, output_q)", vectors)
            _add_pending(c, mid, n)
        return job_ids, now

    def record_served(
        self,
        model_id: bytes,
        input_q: np.ndarray,
        output_q: np.ndarray,
        input_hash: bytes,
        output_hash: bytes,
        leaf_for: Callable[[int], tuple[bytes, bytes]],
    ) -> ServedJob:
        """Persist a served job and return it with its node-assigned jobId, leaf and signature.

        ``leaf_for(job_id)`` builds the leaf and signs it for the id that is stored (outside
        the write lock: signing is the slow part). The answer is sent only after the commit,
        so a receipt always names a job the node will batch.
        """
        now = time.time()
        job_id = self._allocate_served_id()
        leaf, signature = leaf_for(job_id)
        mid = to_hex(model_id)
        row = (job_id, mid, input_hash, output_hash, leaf, signature, now)
        with self._write() as c:
            c.execute(
                "INSERT INTO served_jobs(job_id, model_id, input_hash, output_hash, leaf,"
                " signature, served_at) VALUES(?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            c.execute(
                "INSERT INTO served_vectors(job_id, input_q, output_q) VALUES(?, ?, ?)",
                (job_id, pack(input_q), pack(output_q)),
            )
            _add_pending(c, mid, 1)
        return ServedJob(
            job_id=job_id,
            model_id=model_id,
            input_q=input_q,
            output_q=output_q,
            input_hash=input_hash,
            output_hash=output_hash,
            leaf=leaf,
            signature=signature,
            served_at=now,
            batch_local_id=None,
            leaf_index=None,
        )

    def served_job(self, job_id: int) -> ServedJob | None:
        rows = self._read(f"{_SERVED} WHERE job_id = ?", (job_id,))
        return self._served(rows[0]) if rows else None

    def served_pruned(self, job_id: int) -> bool:
        """Whether ``job_id`` was served and its vectors pruned with its final batch."""
        rows = self._read(
            "SELECT 1 FROM served_jobs j JOIN batches b ON b.local_id = j.batch_local_id"
            " WHERE j.job_id = ? AND b.pruned_at IS NOT NULL",
            (job_id,),
        )
        return bool(rows)

    def batch_jobs(self, local_id: int) -> list[ServedJob]:
        rows = self._read(f"{_SERVED} WHERE batch_local_id = ? ORDER BY leaf_index", (local_id,))
        return [self._served(r) for r in rows]

    def pending_counts(self) -> dict[bytes, tuple[int, float]]:
        """Per model: (unbatched job count, serve time of its first pending job, the lowest
        jobId). The count is kept by the writes themselves and the first job is one index
        lookup: no scan of the served jobs under the lock (ids are allocated in serve order, so
        the first job is the oldest up to the threads' interleaving, microseconds)."""
        with self._lock:
            counted = self._conn.execute(
                "SELECT model_id, n FROM pending_jobs WHERE n > 0"
            ).fetchall()
            out: dict[bytes, tuple[int, float]] = {}
            for model_id, n in counted:
                first = self._conn.execute(
                    "SELECT served_at FROM served_jobs WHERE model_id = ?"
                    " AND batch_local_id IS NULL ORDER BY job_id LIMIT 1",
                    (model_id,),
                ).fetchone()
                if first is not None:
                    out[from_hex(model_id)] = (int(n), float(first[0]))
            return out

    def pending_recount(self) -> dict[bytes, tuple[int, float]]:
        """:meth:`pending_counts` by a scan of the served jobs (the tests' check)."""
        rows = self._read(
            "SELECT s.model_id, COUNT(*), (SELECT served_at FROM served_jobs f"
            " WHERE f.model_id = s.model_id AND f.batch_local_id IS NULL"
            " ORDER BY f.job_id LIMIT 1)"
            " FROM served_jobs s WHERE s.batch_local_id IS NULL GROUP BY s.model_id"
        )
        return {from_hex(r[0]): (int(r[1]), float(r[2])) for r in rows}

    @staticmethod
    def _served(r: sqlite3.Row) -> ServedJob:
        return ServedJob(
            job_id=r["job_id"],
            model_id=from_hex(r["model_id"]),
            input_q=unpack(r["input_q"]),
            output_q=unpack(r["output_q"]),
            input_hash=r["input_hash"],
            output_hash=r["output_hash"],
            leaf=r["leaf"],
            signature=r["signature"],
            served_at=r["served_at"],
            batch_local_id=r["batch_local_id"],
            leaf_index=r["leaf_index"],
        )

    # -- batches -----------------------------------------------------------------------------

    def seal_batch(self, model_id: bytes, max_jobs: int) -> Batch | None:
        """Put up to ``max_jobs`` unbatched jobs of ``model_id`` into a new sealed batch.

        The batch row (its root) and every job's batch and leaf index are written in one
        transaction, so a batch is either fully built or not at all; proofs are not stored
        (:meth:`leaf_proof`). Returns None when nothing is pending.
        """
        mid = to_hex(model_id)
        with self._write() as c:
            rows = c.execute(
                "SELECT job_id, leaf FROM served_jobs WHERE model_id = ? AND batch_local_id IS NULL"
                " ORDER BY job_id LIMIT ?",
                (mid, max_jobs),
            ).fetchall()
            if not rows:
                return None
            tree = MerkleTree([r["leaf"] for r in rows])
            now = time.time()
            cur = c.execute(
                "INSERT INTO batches(model_id, root, count, status, created_at, updated_at)"
                " VALUES(?, ?, ?, ?, ?, ?)",
                (mid, to_hex(tree.root), len(rows), BatchState.SEALED, now, now),
            )
            local_id = int(cur.lastrowid or 0)
            # One statement over the same selection (the write lock is held since the SELECT):
            # the leaf index is the job's rank by id.
            sealed = c.execute(
                "UPDATE served_jobs SET batch_local_id = ?, leaf_index = s.rank"
                " FROM (SELECT job_id, row_number() OVER (ORDER BY job_id) - 1 AS rank"
                "  FROM served_jobs WHERE model_id = ? AND batch_local_id IS NULL"
                "  ORDER BY job_id LIMIT ?) AS s"
                " WHERE served_jobs.job_id = s.job_id",
                (local_id, mid, len(rows)),
            ).rowcount
            if sealed != len(rows):
                raise StateError(f"batch {local_id}: sealed {sealed} jobs, selected {len(rows)}")
            _add_pending(c, mid, -sealed)
        self._remember_tree(local_id, tree)  # after the commit: a rolled-back id is reused
        batch = self.batch(local_id)
        assert batch is not None
        return batch

    #: Trees kept by :meth:`_remember_tree` (a 4,096-leaf tree is ~1 MB of Python objects).
    _TREES_KEPT = 4

    def _remember_tree(self, local_id: int, tree: MerkleTree) -> None:
        with self._lock:
            self._trees.pop(local_id, None)
            self._trees[local_id] = tree
            while len(self._trees) > self._TREES_KEPT:
                del self._trees[next(iter(self._trees))]

    def batch_tree(self, local_id: int) -> MerkleTree | None:
        """The Merkle tree of sealed batch ``local_id``, rebuilt from its stored leaves (None:
        no such batch)."""
        with self._lock:
            tree = self._trees.get(local_id)
            if tree is None:
                rows = self._conn.execute(
                    "SELECT leaf FROM served_jobs WHERE batch_local_id = ? ORDER BY leaf_index",
                    (local_id,),
                ).fetchall()
                if not rows:
                    return None
                tree = MerkleTree([r[0] for r in rows])
            self._remember_tree(local_id, tree)
            return tree

    def leaf_proof(self, local_id: int, leaf_index: int) -> tuple[bytes, ...] | None:
        """The Merkle proof of leaf ``leaf_index`` of sealed batch ``local_id`` (its siblings,
        bottom up), or None when the batch has no such leaf."""
        tree = self.batch_tree(local_id)
        if tree is None or not 0 <= leaf_index < len(tree):
            return None
        return tuple(tree.proof(leaf_index))

    def batch_intent(self, local_id: int, nonce: int | None) -> None:
        with self._write() as c:
            self._cas(
                c,
                "batches",
                "local_id",
                local_id,
                [BatchState.SEALED, BatchState.COMMITTING],
                BatchState.COMMITTING,
                nonce=nonce,
            )

    def mark_batch_committed(
        self,
        local_id: int,
        batch_id: int,
        tx_hash: str | None,
        challenge_deadline: int,
        *,
        commit_block: int | None = None,
        confirmed: bool = False,
    ) -> None:
        with self._write() as c:
            self._free_batch_id(c, local_id, batch_id)
            self._cas(
                c,
                "batches",
                "local_id",
                local_id,
                [BatchState.SEALED, BatchState.COMMITTING],
                BatchState.COMMITTED,
                batch_id=_check_int64("batchId", batch_id),
                tx_hash=tx_hash,
                challenge_deadline=challenge_deadline,
                commit_block=commit_block,
                confirmed=1 if confirmed else 0,
            )

    @staticmethod
    def _free_batch_id(c: sqlite3.Connection, local_id: int, batch_id: int) -> None:
        """Another local batch recorded under ``batch_id`` holds a stale id (a reorg moved
        it): forget that id (the batch is resolved again by its root) so ``batch_id`` stays
        unique."""
        c.execute(
            "UPDATE batches SET batch_id = NULL, confirmed = 0, updated_at = ?"
            " WHERE batch_id = ? AND local_id != ?",
            (time.time(), batch_id, local_id),
        )

    def correct_batch_id(
        self,
        local_id: int,
        batch_id: int,
        challenge_deadline: int,
        *,
        commit_block: int | None = None,
        confirmed: bool = False,
    ) -> None:
        """Record the chain's id for a committed batch, found by its root (after a reorg the
        id from the commit's receipt may belong to another batch)."""
        with self._write() as c:
            self._free_batch_id(c, local_id, batch_id)
            c.execute(
                "UPDATE batches SET batch_id = ?, challenge_deadline = ?,"
                " commit_block = COALESCE(?, commit_block), confirmed = ?, updated_at = ?"
                " WHERE local_id = ?",
                (
                    _check_int64("batchId", batch_id),
                    challenge_deadline,
                    commit_block,
                    1 if confirmed else 0,
                    time.time(),
                    local_id,
                ),
            )

    def unconfirm_batch(self, local_id: int) -> None:
        """The chain shows another root under this batch's id: resolve it again."""
        with self._write() as c:
            c.execute(
                "UPDATE batches SET confirmed = 0, updated_at = ? WHERE local_id = ?",
                (time.time(), local_id),
            )

    def reopen_batch(self, local_id: int) -> None:
        """A reorg dropped the batch's commitBatch: back to ``committing`` (the sender resumes
        its journaled transaction, or sends afresh when that nonce went elsewhere)."""
        with self._write() as c:
            self._cas(
                c,
                "batches",
                "local_id",
                local_id,
                [BatchState.COMMITTED],
                BatchState.COMMITTING,
                batch_id=None,
                confirmed=0,
                commit_block=None,
            )

    def batch_by_root(self, model_id: bytes, root: bytes) -> Batch | None:
        rows = self._read(
            "SELECT * FROM batches WHERE model_id = ? AND root = ?",
            (to_hex(model_id), to_hex(root)),
        )
        return self._batch(rows[0]) if rows else None

    def mark_batch_final(self, local_id: int, *, final_block: int | None = None) -> None:
        """``final_block``: the block the node saw it final at, to re-read once deep enough
        (:meth:`unsettled_finals`); None: nothing to re-read (``confirmations`` 0)."""
        with self._write() as c:
            self._cas(
                c,
                "batches",
                "local_id",
                local_id,
                [BatchState.COMMITTED],
                BatchState.FINAL,
                final_at=time.time(),
                final_block=final_block,
            )

    def unsettled_finals(self) -> list[Batch]:
        """Final batches whose finalization is not yet re-read ``confirmations`` deep."""
        rows = self._read(
            "SELECT * FROM batches INDEXED BY batches_final_unsettled"
            " WHERE final_block IS NOT NULL AND status = 'final' ORDER BY local_id"
        )
        return [self._batch(r) for r in rows]

    def settle_final(self, local_id: int) -> None:
        """The chain still shows the batch final ``confirmations`` blocks later: settled."""
        with self._write() as c:
            c.execute("UPDATE batches SET final_block = NULL WHERE local_id = ?", (local_id,))

    def move_final_block(self, local_id: int, final_block: int) -> None:
        """A reorg re-mined the batch's finalizeBatch in ``final_block``: it is re-read
        ``confirmations`` blocks past that one (never settled, never pruned before)."""
        with self._write() as c:
            c.execute(
                "UPDATE batches SET final_block = ? WHERE local_id = ? AND final_block IS NOT NULL",
                (final_block, local_id),
            )

    def reopen_final(self, local_id: int) -> None:
        """A reorg dropped the batch's finalizeBatch (the chain shows it committed): back to
        ``committed`` (confirmed: its commit stayed), to be finalized again."""
        with self._write() as c:
            self._cas(
                c,
                "batches",
                "local_id",
                local_id,
                [BatchState.FINAL],
                BatchState.COMMITTED,
                final_at=None,
                final_block=None,
            )

    # -- listings and pruning ----------------------------------------------------------------

    def batch_snapshot(self, local_id: int) -> BatchSnapshot:
        """A read snapshot of one batch's leaves on a connection of its own (WAL: the writer
        and the serving lock are not held while a listing streams). Close it when done."""
        return BatchSnapshot(self.path, local_id)

    def prune_final(self, final_before: float, max_rows: int) -> int:
        """Delete up to ``max_rows`` served vectors of batches final before ``final_before``
        (epoch seconds); the number deleted. Never a batch with an open leaf request or an
        unresolved dispute of this node (the chain refuses both on a final batch; checked
        again here). A batch is marked pruned with its first deleted row (its listing answers
        410 from then on) and done when no vector is left; one transaction per call."""
        unresolved = ",".join(f"'{s}'" for s in UNRESOLVED_DISPUTES)
        deleted = 0
        with self._write() as c:
            candidates = c.execute(
                # The partial index holds only final batches not yet pruned: the walk does not
                # grow with the batches pruned before.
                "SELECT local_id, batch_id FROM batches INDEXED BY batches_prunable"
                " WHERE status = 'final'"
                " AND prune_done = 0 AND COALESCE(final_at, updated_at) < ?"
                " AND final_block IS NULL"  # its finalizeBatch may still be reorged out
                " AND NOT EXISTS (SELECT 1 FROM leaf_requests r"
                "  WHERE r.batch_id = batches.batch_id AND r.status = 'open')"
                " AND NOT EXISTS (SELECT 1 FROM disputes d WHERE d.kind = ?"
                f"  AND d.ref = batches.batch_id AND d.status IN ({unresolved}))"
                " ORDER BY local_id LIMIT 64",
                (final_before, DISPUTE_KIND_BATCH),
            ).fetchall()
            now = time.time()
            for local_id, _ in candidates:
                if deleted >= max_rows:
                    break
                c.execute(
                    "UPDATE batches SET pruned_at = COALESCE(pruned_at, ?) WHERE local_id = ?",
                    (now, local_id),
                )
                cur = c.execute(
                    "DELETE FROM served_vectors WHERE job_id IN (SELECT v.job_id"
                    " FROM served_jobs j JOIN served_vectors v USING (job_id)"
                    " WHERE j.batch_local_id = ? LIMIT ?)",
                    (local_id, max_rows - deleted),
                )
                deleted += max(cur.rowcount, 0)
                if deleted < max_rows:  # nothing of this batch is left
                    c.execute("UPDATE batches SET prune_done = 1 WHERE local_id = ?", (local_id,))
        return deleted

    def batch(self, local_id: int) -> Batch | None:
        rows = self._read("SELECT * FROM batches WHERE local_id = ?", (local_id,))
        return self._batch(rows[0]) if rows else None

    def batch_by_chain_id(self, batch_id: int) -> Batch | None:
        rows = self._read("SELECT * FROM batches WHERE batch_id = ?", (batch_id,))
        return self._batch(rows[0]) if rows else None

    def batches(self, *states: BatchState) -> list[Batch]:
        rows = self._in_states("batches", states, "local_id")
        return [self._batch(r) for r in rows]

    @staticmethod
    def _batch(r: sqlite3.Row) -> Batch:
        return Batch(
            local_id=r["local_id"],
            model_id=from_hex(r["model_id"]),
            root=from_hex(r["root"]),
            count=r["count"],
            status=BatchState(r["status"]),
            batch_id=r["batch_id"],
            nonce=r["nonce"],
            tx_hash=r["tx_hash"],
            challenge_deadline=r["challenge_deadline"],
            created_at=r["created_at"],
            commit_block=r["commit_block"],
            confirmed=bool(r["confirmed"]),
            pruned=r["pruned_at"] is not None,
            final_block=r["final_block"],
        )

    # -- disputes ----------------------------------------------------------------------------

    def record_dispute(
        self,
        dispute_id: bytes,
        kind: int,
        ref: int,
        job_id: int,
        proof_deadline: int,
        *,
        leaf_index: int | None = None,
        conn: sqlite3.Connection | None = None,
    ) -> bool:
        """Remember a DisputeOpened against this node; idempotent (True if it was new).

        ``job_id`` is informational for a batch leaf (the challenger names it): the leaf is
        found by its position, so any value is stored (clamped), never trusted."""
        with self._write(conn) as c:
            # Seen again (a replay after a reorg): the event's deadline is the chain's now, and
            # a dispute the node had recorded as dropped is open again.
            if c.execute(
                "UPDATE disputes SET proof_deadline = ?, status = CASE status WHEN ? THEN ?"
                " ELSE status END WHERE dispute_id = ?",
                (proof_deadline, DisputeState.DROPPED, DisputeState.OPEN, to_hex(dispute_id)),
            ).rowcount:
                return False
            cur = c.execute(
                "INSERT OR IGNORE INTO disputes(dispute_id, kind, ref, job_id, proof_deadline,"
                " status, updated_at, leaf_index) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    to_hex(dispute_id),
                    kind,
                    _check_int64("ref", ref),
                    min(job_id, 2**63 - 1),
                    proof_deadline,
                    DisputeState.OPEN,
                    time.time(),
                    None if leaf_index is None else min(leaf_index, 2**63 - 1),
                ),
            )
            return cur.rowcount == 1

    def save_proof(
        self,
        dispute_id: bytes,
        proof: bytes,
        instances: Sequence[int],
        committed_output: Sequence[int],
    ) -> None:
        """Keep the proof so that a restart re-sends it instead of proving again."""
        self._move_dispute(
            dispute_id,
            [DisputeState.OPEN],
            DisputeState.PROOF_READY,
            proof=to_hex(proof),
            instances=_dump(instances),
            committed_output=_dump(committed_output),
        )

    def defend_intent(self, dispute_id: bytes, nonce: int | None) -> None:
        with self._write() as c:
            key = to_hex(dispute_id)
            self._cas(
                c,
                "disputes",
                "dispute_id",
                key,
                [DisputeState.PROOF_READY, DisputeState.DEFENDING],
                DisputeState.DEFENDING,
                nonce=nonce,
            )
            c.execute("UPDATE disputes SET attempts = attempts + 1 WHERE dispute_id = ?", (key,))

    def mark_defended(self, dispute_id: bytes, tx_hash: str | None) -> None:
        """Defended (``tx_hash`` None: seen on chain; from ``open`` when someone else defended
        it before the node had a proof)."""
        self._move_dispute(dispute_id, UNRESOLVED_DISPUTES, DisputeState.DEFENDED, tx_hash=tx_hash)

    def mark_dispute_lost(self, dispute_id: bytes, reason: str) -> None:
        self._move_dispute(dispute_id, UNRESOLVED_DISPUTES, DisputeState.LOST, last_error=reason)

    def mark_dispute_undefendable(self, dispute_id: bytes, reason: str) -> None:
        """An open dispute that no proof can win (checked against the circuit's witness)."""
        self._move_dispute(
            dispute_id, [DisputeState.OPEN], DisputeState.UNDEFENDABLE, last_error=reason
        )

    def mark_dispute_dropped(self, dispute_id: bytes, reason: str) -> None:
        self._move_dispute(dispute_id, UNRESOLVED_DISPUTES, DisputeState.DROPPED, last_error=reason)

    def _move_dispute(
        self, dispute_id: bytes, allowed: Sequence[str], to: str, **fields: object
    ) -> None:
        with self._write() as c:
            self._cas(c, "disputes", "dispute_id", to_hex(dispute_id), allowed, to, **fields)

    def dispute_error(self, dispute_id: bytes, error: str) -> None:
        with self._write() as c:
            c.execute(
                "UPDATE disputes SET last_error = ?, updated_at = ? WHERE dispute_id = ?",
                (error[:2000], time.time(), to_hex(dispute_id)),
            )

    def dispute(self, dispute_id: bytes) -> Dispute | None:
        rows = self._read("SELECT * FROM disputes WHERE dispute_id = ?", (to_hex(dispute_id),))
        return self._dispute(rows[0]) if rows else None

    def disputes(self, *states: DisputeState) -> list[Dispute]:
        rows = self._in_states("disputes", states, "proof_deadline")
        return [self._dispute(r) for r in rows]

    @staticmethod
    def _dispute(r: sqlite3.Row) -> Dispute:
        return Dispute(
            dispute_id=from_hex(r["dispute_id"]),
            kind=r["kind"],
            ref=r["ref"],
            job_id=r["job_id"],
            proof_deadline=r["proof_deadline"],
            status=DisputeState(r["status"]),
            proof=None if r["proof"] is None else from_hex(r["proof"]),
            instances=_ints(r["instances"]),
            committed_output=_ints(r["committed_output"]),
            attempts=r["attempts"],
            nonce=r["nonce"],
            tx_hash=r["tx_hash"],
            last_error=r["last_error"],
            leaf_index=r["leaf_index"],
        )

    # -- leaf requests -----------------------------------------------------------------------

    def record_leaf_request(
        self,
        request_id: bytes,
        batch_id: int,
        leaf_index: int,
        reveal_deadline: int,
        *,
        conn: sqlite3.Connection | None = None,
    ) -> bool:
        with self._write(conn) as c:
            # Seen again (a replay after a reorg): the event's deadline is the chain's now, and
            # a request the node had recorded as dropped is open again.
            if c.execute(
                "UPDATE leaf_requests SET reveal_deadline = ?, status = CASE status"
                " WHEN 'dropped' THEN 'open' ELSE status END WHERE request_id = ?",
                (reveal_deadline, to_hex(request_id)),
            ).rowcount:
                return False
            cur = c.execute(
                "INSERT OR IGNORE INTO leaf_requests(request_id, batch_id, leaf_index,"
                " reveal_deadline, status, updated_at) VALUES(?, ?, ?, ?, 'open', ?)",
                (
                    to_hex(request_id),
                    _check_int64("batchId", batch_id),
                    min(leaf_index, 2**63 - 1),
                    reveal_deadline,
                    time.time(),
                ),
            )
            return cur.rowcount == 1

    def reopen_answered(self, conn: sqlite3.Connection | None = None) -> tuple[int, int]:
        """After a reorg below the confirmation depth: every defended dispute and revealed leaf
        request goes back to open, so the next step re-reads each from the chain (the new
        branch may hold the claim without the node's answer: audit A5-1). Answered again only
        where the chain says it is open; (disputes, leaf requests) reopened."""
        now = time.time()
        with self._write(conn) as c:
            disputes = c.execute(
                "UPDATE disputes SET status = ?, updated_at = ? WHERE status = ?",
                (DisputeState.OPEN, now, DisputeState.DEFENDED),
            ).rowcount
            requests = c.execute(
                "UPDATE leaf_requests SET status = 'open', updated_at = ? "
                "WHERE status = 'revealed'",
                (now,),
            ).rowcount
        return disputes, requests

    def leaf_requests(self, *states: str) -> list[LeafRequest]:
        rows = self._in_states("leaf_requests", states, "reveal_deadline")
        return [
            LeafRequest(
                from_hex(r["request_id"]),
                r["batch_id"],
                r["leaf_index"],
                r["reveal_deadline"],
                r["status"],
                r["tx_hash"],
                r["last_error"],
            )
            for r in rows
        ]

    def mark_leaf_request(
        self,
        request_id: bytes,
        status: str,
        *,
        tx_hash: str | None = None,
        error: str | None = None,
    ) -> None:
        with self._write() as c:
            c.execute(
                "UPDATE leaf_requests SET status = ?, tx_hash = COALESCE(?, tx_hash),"
                " last_error = ?, updated_at = ? WHERE request_id = ?",
                (
                    status,
                    tx_hash,
                    None if error is None else error[:2000],
                    time.time(),
                    to_hex(request_id),
                ),
            )

    def leaf_request_error(self, request_id: bytes, error: str) -> None:
        with self._write() as c:
            c.execute(
                "UPDATE leaf_requests SET last_error = ?, updated_at = ? WHERE request_id = ?",
                (error[:2000], time.time(), to_hex(request_id)),
            )

    def served_at(self, local_id: int, leaf_index: int) -> ServedJob | None:
        """The served job at position ``leaf_index`` of local batch ``local_id``."""
        rows = self._read(
            f"{_SERVED} WHERE batch_local_id = ? AND leaf_index = ?", (local_id, leaf_index)
        )
        return self._served(rows[0]) if rows else None

    # -- transaction journal (prover.transactions.TxJournal) ----------------------------------

    def tx_sent(self, tx: SentTx) -> None:
        with self._write() as c:
            c.execute(
                "INSERT OR REPLACE INTO transactions(tx_hash, intent, nonce, max_fee,"
                " priority_fee, sent_at, raw) VALUES(?, ?, ?, ?, ?, ?, ?)",
                (
                    tx.tx_hash,
                    tx.intent,
                    tx.nonce,
                    str(tx.max_fee),
                    str(tx.priority_fee),
                    tx.sent_at,
                    None if tx.raw is None else to_hex(tx.raw),
                ),
            )

    def txs_for(self, intent: str) -> list[SentTx]:
        rows = self._read(
            "SELECT * FROM transactions WHERE intent = ? ORDER BY sent_at, rowid", (intent,)
        )
        return [self._sent_tx(r) for r in rows]

    def txs_from_nonce(self, nonce: int) -> list[SentTx]:
        rows = self._read(
            "SELECT * FROM transactions WHERE nonce >= ? ORDER BY nonce, sent_at, rowid", (nonce,)
        )
        return [self._sent_tx(r) for r in rows]

    @staticmethod
    def _sent_tx(r: sqlite3.Row) -> SentTx:
        return SentTx(
            r["intent"],
            int(r["nonce"]),
            r["tx_hash"],
            int(r["max_fee"]),
            int(r["priority_fee"]),
            float(r["sent_at"]),
            None if r["raw"] is None else from_hex(r["raw"]),
        )

    def txs_clear(self, intent: str) -> None:
        with self._write() as c:
            c.execute("DELETE FROM transactions WHERE intent = ?", (intent,))

    def txs_close(self, intent: str) -> None:
        with self._write() as c:
            c.execute(
                "UPDATE transactions SET intent = ? WHERE intent = ?",
                (intent + CLOSED_SUFFIX, intent),
            )

    # -- summary -----------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, int]]:
        """Row counts per state, per table (for ``node status`` and metrics): read from the
        counts the triggers keep, a few rows whatever the number of jobs."""
        out: dict[str, dict[str, int]] = {t: {} for t in _COUNTED}
        for r in self._read("SELECT tbl, status, n FROM state_counts WHERE n != 0"):
            out[r[0]][r[1]] = int(r[2])
        rows = self._read("SELECT COALESCE(SUM(n), 0) FROM pending_jobs")
        out["served_jobs"] = {"pending": int(rows[0][0])}
        return out

    def recount(self) -> dict[str, dict[str, int]]:
        """:meth:`counts` computed by scanning the tables (the check of the kept counts: the
        tests compare both; slow on a large database)."""
        out: dict[str, dict[str, int]] = {}
        for table in _COUNTED:
            rows = self._read(f"SELECT status, COUNT(*) FROM {table} GROUP BY status")
            out[table] = {r[0]: int(r[1]) for r in rows}
        rows = self._read("SELECT COUNT(*) FROM served_jobs WHERE batch_local_id IS NULL")
        out["served_jobs"] = {"pending": int(rows[0][0])}
        return out
