"""Read-only views of the challenger's SQLite database (the demo never writes to it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from challenger.store import BatchState, JobState
from spotcheck.chain import JobKind

#: Job states in which the challenger has not decided yet.
UNDECIDED = (JobState.SEEN, JobState.SAMPLED, JobState.MISMATCHED, JobState.DISPUTE_SENT)
#: Job states of commitments it did not re-run.
NOT_SAMPLED = (JobState.SEEN, JobState.SKIPPED)


@contextmanager
def read_only(db_path: Path) -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)) as conn:
        yield conn


class ChallengerDb:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def busy(self) -> bool:
        """True while the challenger has commitments it has not decided on."""
        marks = ", ".join("?" for _ in UNDECIDED)
        with read_only(self.db_path) as conn:
            busy = conn.execute(
                f"SELECT COUNT(*) FROM ch_jobs WHERE state IN ({marks})", UNDECIDED
            ).fetchone()[0]
            batches = conn.execute(
                "SELECT COUNT(*) FROM ch_batches WHERE state = ?", (BatchState.SEEN,)
            ).fetchone()[0]
            return bool(busy or batches)

    def job_states(self) -> dict[str, int]:
        """Commitments per state."""
        with read_only(self.db_path) as conn:
            return dict(conn.execute("SELECT state, COUNT(*) FROM ch_jobs GROUP BY state"))

    def job_states_by_node(self) -> list[tuple[str, str, int]]:
        """(node, state, count) rows."""
        with read_only(self.db_path) as conn:
            rows = conn.execute(
                "SELECT node, state, COUNT(*) FROM ch_jobs GROUP BY node, state"
            ).fetchall()
        return [(str(node), str(state), int(n)) for node, state, n in rows]

    def checkpoint(self, name: str = "challenger") -> int:
        """The last block the challenger's follower has handled (-1: none yet)."""
        with read_only(self.db_path) as conn:
            row = conn.execute(
                "SELECT block FROM follower_checkpoint WHERE name = ?", (name,)
            ).fetchone()
            return -1 if row is None else int(row[0])

    def disputes_unrecorded(self) -> bool:
        """True while the challenger has a dispute whose outcome it has not recorded yet (sent,
        or open in its store: the chain may already show it settled by someone else)."""
        with read_only(self.db_path) as conn:
            return bool(
                conn.execute(
                    "SELECT COUNT(*) FROM ch_jobs WHERE state IN (?, ?)",
                    (JobState.DISPUTE_SENT.value, JobState.DISPUTE_OPEN.value),
                ).fetchone()[0]
            )

    def claims_pending(self) -> bool:
        """True while the challenger has a paid-check claim it has not sent (planned or
        sending), or an on-chain job it found correct and has not planned a claim for."""
        with read_only(self.db_path) as conn:
            pending = conn.execute(
                "SELECT COUNT(*) FROM ch_claims WHERE state IN ('planned', 'sending')"
            ).fetchone()[0]
            unplanned = conn.execute(
                "SELECT COUNT(*) FROM ch_jobs j WHERE j.state = ? AND j.kind = ? "
                "AND j.vrf_proof IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM ch_claims c WHERE c.job_key = j.job_key)",
                (JobState.MATCHED.value, int(JobKind.ONCHAIN)),
            ).fetchone()[0]
            return bool(pending or unplanned)

    def claim_states(self) -> dict[str, int]:
        """Paid-check claims per state."""
        with read_only(self.db_path) as conn:
            return dict(conn.execute("SELECT state, COUNT(*) FROM ch_claims GROUP BY state"))

    def onchain_sampled(self) -> int:
        """On-chain jobs the challenger sampled (re-ran or is re-running)."""
        marks = ", ".join("?" for _ in NOT_SAMPLED)
        with read_only(self.db_path) as conn:
            return int(
                conn.execute(
                    f"SELECT COUNT(*) FROM ch_jobs WHERE kind = ? AND state NOT IN ({marks})",
                    (int(JobKind.ONCHAIN), *NOT_SAMPLED),
                ).fetchone()[0]
            )
