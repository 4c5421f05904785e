"""Record the seeds of what we will claim early (audit A6-8).

A claim needs its seed, ``blockhash(commitBlock + 1)``, stored in the CheckPool while the EVM
can read it (256 blocks); the first claim stores it, but a claim waits for the re-run, which
may take longer. So as soon as a job or a batch holds something our VRF sampled (inside the
pool's rate), :class:`SeedRecorder` sends ``recordSeed(jobId)`` / ``recordBatchSeed(batchId)``
once, unless someone already did, and journals it in ``ch_claim_seeds`` keyed by (kind, ref,
commit block): ``sending`` (with the head block, before the transaction, so a restart does not
send twice while the first may still land), ``recorded``, or ``unavailable`` (too late,
logged). A reorg that moves the commit block gives a new key: recorded again.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from challenger.sampling import parse_proof
from spotcheck import vrf
from spotcheck.chain import JobKind, TxResult
from spotcheck.errors import ChainError, revert_name

log = logging.getLogger(__name__)

#: ``blockhash`` reads the last 256 blocks.
BLOCKHASH_WINDOW = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ch_claim_seeds (
    kind          INTEGER NOT NULL,
    ref           TEXT NOT NULL,
    commit_block  INTEGER NOT NULL,
    state         TEXT NOT NULL,     -- sending | recorded | unavailable
    sent_block    INTEGER,
    tx_hash       TEXT,
    reason        TEXT,
    PRIMARY KEY (kind, ref, commit_block)
);
"""


class SeedPort(Protocol):
    def head(self) -> int: ...


@dataclass(frozen=True)
class SeedOps:
    """How one kind's seed is read and recorded on chain."""

    kind: JobKind
    recorded: Callable[[int], bool]
    record: Callable[[int], TxResult]
    #: The pool's sampling rate for (ref, model id): the model's for a job, the batch's
    #: snapshot for a batch.
    rate: Callable[[int, bytes], int]


class SeedRecorder:
    """Records the seeds of jobs/batches holding a sampled job or leaf, once each."""

    def __init__(
        self, conn: sqlite3.Connection, chain: SeedPort, ops: list[SeedOps], resend_after: int
    ) -> None:
        self.conn = conn
        self.chain = chain
        self.ops = ops
        self.resend_after = resend_after
        conn.executescript(_SCHEMA)

    def step(self) -> int:
        """Send what is due; returns how many seeds this step recorded."""
        if not self.ops:
            return 0
        head = self.chain.head()
        done = 0
        for op in self.ops:
            for ref, commit_block, sent_block in self._candidates(op, head):
                if head <= commit_block + 1:
                    continue  # the seed block is not mined yet
                if sent_block is not None and head < sent_block + self.resend_after:
                    continue  # a send may still land
                done += self._record(op, ref, commit_block, head)
        return done

    def _candidates(self, op: SeedOps, head: int) -> list[tuple[int, int, int | None]]:
        """(ref, commit block, sent block) of the refs with a sampled row inside the pool's
        rate whose seed is not journaled as recorded or unavailable; only commit blocks whose
        seed can still be read (older ones are the claimer's ``missed``)."""
        rows = self.conn.execute(
            "SELECT j.ref, j.commit_block, j.model_id, j.vrf_proof, s.sent_block "
            "FROM ch_jobs j LEFT JOIN ch_claim_seeds s "
            "ON s.kind = j.kind AND s.ref = j.ref AND s.commit_block = j.commit_block "
            "WHERE j.kind = ? AND j.vrf_proof IS NOT NULL AND j.reorg_fork IS NULL "
            "AND j.commit_block + 1 + ? >= ? AND (s.state IS NULL OR s.state = 'sending') "
            "ORDER BY j.commit_block",
            (int(op.kind), BLOCKHASH_WINDOW, head),
        ).fetchall()
        rates: dict[tuple[int, bytes], int] = {}
        out: dict[tuple[int, int], int | None] = {}
        for ref, commit_block, model_id, proof, sent_block in rows:
            key = (int(ref), int(commit_block))
            if key in out:
                continue
            rk = (int(ref), bytes(model_id))
            if rk not in rates:
                rates[rk] = op.rate(*rk)
            if rates[rk] > 0 and vrf.sampled_bps(parse_proof(proof), rates[rk]):
                out[key] = None if sent_block is None else int(sent_block)
        return [(r, b, s) for (r, b), s in out.items()]

    def _record(self, op: SeedOps, ref: int, commit_block: int, head: int) -> int:
        what = "job" if op.kind is JobKind.ONCHAIN else "batch"
        if op.recorded(ref):
            self._journal(op.kind, ref, commit_block, "recorded", reason="recorded by another")
            return 0
        if head > commit_block + 1 + BLOCKHASH_WINDOW:
            self._unavailable(op.kind, ref, commit_block, what, "not recorded within 256 blocks")
            return 0
        self._journal(op.kind, ref, commit_block, "sending", sent_block=head)
        try:
            tx = op.record(ref)
        except ChainError as err:
            if revert_name(err) == "SeedUnavailable":
                self._unavailable(op.kind, ref, commit_block, what, str(err))
            else:  # retried after resend_after blocks (or adopted if it landed)
                log.warning("recording the seed of %s %d failed: %s", what, ref, err)
            return 0
        self._journal(op.kind, ref, commit_block, "recorded", tx_hash=tx.tx_hash)
        log.info("recorded the seed of %s %d (tx %s)", what, ref, tx.tx_hash)
        return 1

    def _unavailable(self, kind: JobKind, ref: int, block: int, what: str, why: str) -> None:
        self._journal(kind, ref, block, "unavailable", reason=why)
        log.warning("SEED LOST: %s %d cannot be claimed: %s", what, ref, why)

    def _journal(
        self,
        kind: JobKind,
        ref: int,
        commit_block: int,
        state: str,
        *,
        sent_block: int | None = None,
        tx_hash: str | None = None,
        reason: str | None = None,
    ) -> None:
        # One statement: atomic in the store's autocommit mode.
        self.conn.execute(
            "INSERT INTO ch_claim_seeds(kind, ref, commit_block, state, sent_block, tx_hash, "
            "reason) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(kind, ref, commit_block) DO "
            "UPDATE SET state = excluded.state, "
            "sent_block = COALESCE(excluded.sent_block, sent_block), "
            "tx_hash = COALESCE(excluded.tx_hash, tx_hash), reason = excluded.reason",
            (int(kind), str(ref), commit_block, state, sent_block, tx_hash, reason),
        )
