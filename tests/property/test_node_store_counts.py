"""The node's kept counts (issue 14): after any sequence of store operations, restarts and
rolled-back writes, ``counts()`` and ``pending_counts()`` equal a full recount."""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prover.store import BatchState, JobState, Store
from spotcheck.errors import StateError

MODELS = (bytes.fromhex("aa" * 32), bytes.fromhex("bb" * 32))

NAMES = (
    "serve",
    "seal",
    "commit_batch",
    "final_batch",
    "reopen_batch",
    "request",
    "job",
    "dispute",
    "dispute_lost",
    "dispute_dropped",
    "prune",
    "aborted",
    "restart",
)
#: (operation, a, b): small integers naming the row, the model, the size or the target state
#: (serving and sealing weighted up: most rows a node writes are served jobs and batches)
op = st.tuples(
    st.sampled_from((*NAMES, "serve", "serve", "seal", "final_batch")),
    st.integers(0, 6),
    st.integers(0, 6),
)
STATES = list(JobState)


def _serve(store: Store, model: int) -> None:
    store.record_served(
        MODELS[model % 2],
        np.arange(3, dtype=np.int64),
        np.arange(2, dtype=np.int64),
        b"\x01" * 32,
        b"\x02" * 32,
        lambda job_id: (job_id.to_bytes(32, "big"), b"\x03" * 65),
    )


def _aborted(store: Store) -> None:
    """A write that fails mid-transaction (a crash): rolled back with its count changes."""
    try:
        with store._write() as c:
            c.execute(
                "INSERT INTO batches(model_id, root, count, status, created_at, updated_at)"
                " VALUES('00', '00', 1, 'sealed', 0, 0)"
            )
            c.execute("UPDATE batches SET status = 'final'")
            c.execute("UPDATE served_jobs SET batch_local_id = NULL")
            raise RuntimeError("crash mid-transaction")
    except RuntimeError:
        pass


def _job(store: Store, job_id: int, to: JobState) -> None:
    if to == JobState.COMMITTING:
        store.commit_intent(job_id, [1], None)
    elif to == JobState.COMMITTED:
        store.mark_committed(job_id, None, 5)
    elif to != JobState.REQUESTED:
        store.mark_job(job_id, to)


def _apply(store: Store, path: Path, step: tuple[str, int, int]) -> Store:
    name, a, b = step
    actions = {
        "serve": lambda: _serve(store, a),
        "seal": lambda: store.seal_batch(MODELS[a % 2], b + 1),
        "commit_batch": lambda: store.mark_batch_committed(a + 1, 101 + a, None, 0),
        "final_batch": lambda: store.mark_batch_final(a + 1),
        "reopen_batch": lambda: store.reopen_batch(a + 1),
        "request": lambda: store.record_requested(a, MODELS[0], [1, 2], 10),
        "job": lambda: _job(store, a, STATES[b % len(STATES)]),
        "dispute": lambda: store.record_dispute(bytes([a]) * 32, 1, 101 + b, 0, 10),
        "dispute_lost": lambda: store.mark_dispute_lost(bytes([a]) * 32, "lost"),
        "dispute_dropped": lambda: store.mark_dispute_dropped(bytes([a]) * 32, "reorged away"),
        "prune": lambda: store.prune_final(time.time() + 1, b + 1),
        "aborted": lambda: _aborted(store),
    }
    if name == "restart":
        store.close()
        return Store(path)
    with contextlib.suppress(StateError):  # an illegal transition changes nothing
        actions[name]()
    return store


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(op, max_size=40))
def test_counts_afterAnyOperations_equalAFullRecount(steps: list[tuple[str, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "node.sqlite"
        store = Store(path)
        try:
            for step in steps:
                store = _apply(store, path, step)
                assert store.counts() == store.recount(), step
                assert store.pending_counts() == store.pending_recount(), step
        finally:
            store.close()


def test_counts_ofADatabaseWrittenBeforeTheCounts_areBackFilledOnOpen(tmp_path: Path) -> None:
    path = tmp_path / "node.sqlite"
    store = Store(path)
    for i in range(5):
        _serve(store, i % 2)
    store.seal_batch(MODELS[0], 2)
    store.record_requested(1, MODELS[0], [1], 10)
    expected = store.recount()
    with store._write() as c:  # an older node's file: no counts, no triggers
        c.execute("DROP TABLE state_counts")
        c.execute("DROP TABLE pending_jobs")
        for (trigger,) in c.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        ).fetchall():
            c.execute(f"DROP TRIGGER {trigger}")
    store.close()
    store = Store(path)
    assert store.counts() == expected
    assert expected["served_jobs"] == {"pending": 3}
    assert store.batches(BatchState.SEALED)[0].count == 2
    store.close()
