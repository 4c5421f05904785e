"""The node's kept counts (issue 14): after any sequence of store operations, restarts and
rolled-back writes, ``counts()`` and ``pending_counts()`` equal a full recount."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prover.store import BatchState, JobState, Store
from spotcheck.errors import StateError

MODELS = (bytes.fromhex("aa" * 32), bytes.fromhex("bb" * 32))

op = st.one_of(
    st.tuples(st.just("serve"), st.integers(0, 1)),
    st.tuples(st.just("seal"), st.integers(0, 1), st.integers(1, 4)),
    st.tuples(st.just("commit_batch"), st.integers(0, 6)),
    st.tuples(st.just("final_batch"), st.integers(0, 6)),
    st.tuples(st.just("reopen_batch"), st.integers(0, 6)),
    st.tuples(st.just("request"), st.integers(0, 5)),
    st.tuples(st.just("job"), st.integers(0, 5), st.sampled_from(list(JobState))),
    st.tuples(st.just("dispute"), st.integers(0, 3), st.integers(0, 6)),
    st.tuples(st.just("dispute_lost"), st.integers(0, 3)),
    st.tuples(st.just("prune"), st.integers(1, 3)),
    st.tuples(st.just("aborted"), st.integers(0, 1)),
    st.tuples(st.just("restart")),
)


def _serve(store: Store, model: int) -> None:
    store.record_served(
        MODELS[model],
        np.arange(3, dtype=np.int64),
        np.arange(2, dtype=np.int64),
        b"\x01" * 32,
        b"\x02" * 32,
        lambda job_id: (job_id.to_bytes(32, "big"), b"\x03" * 65),
    )


def _apply(store: Store, path: Path, step: tuple[object, ...]) -> Store:  # noqa: C901
    name = step[0]
    try:
        if name == "serve":
            _serve(store, int(step[1]))  # type: ignore[call-overload]
        elif name == "seal":
            store.seal_batch(MODELS[int(step[1])], int(step[2]))  # type: ignore[call-overload]
        elif name == "commit_batch":
            local = int(step[1]) + 1  # type: ignore[call-overload]
            store.mark_batch_committed(local, 100 + local, None, 0)
        elif name == "final_batch":
            store.mark_batch_final(int(step[1]) + 1)  # type: ignore[call-overload]
        elif name == "reopen_batch":
            store.reopen_batch(int(step[1]) + 1)  # type: ignore[call-overload]
        elif name == "request":
            store.record_requested(int(step[1]), MODELS[0], [1, 2], 10)  # type: ignore[call-overload]
        elif name == "job":
            job_id, to = int(step[1]), step[2]  # type: ignore[call-overload]
            if to == JobState.COMMITTING:
                store.commit_intent(job_id, [1], None)
            elif to == JobState.COMMITTED:
                store.mark_committed(job_id, None, 5)
            elif to != JobState.REQUESTED:
                store.mark_job(job_id, JobState(str(to)))
        elif name == "dispute":
            store.record_dispute(
                bytes([int(step[1])]) * 32,  # type: ignore[call-overload]
                1,
                100 + int(step[2]) + 1,  # type: ignore[call-overload]
                0,
                10,
            )
        elif name == "dispute_lost":
            store.mark_dispute_lost(bytes([int(step[1])]) * 32, "lost")  # type: ignore[call-overload]
        elif name == "prune":
            store.prune_final(time.time() + 1, int(step[1]))  # type: ignore[call-overload]
        elif name == "aborted":
            try:
                with store._write() as c:
                    c.execute(
                        "INSERT INTO batches(model_id, root, count, status, created_at,"
                        " updated_at) VALUES('00', '00', 1, 'sealed', 0, 0)"
                    )
                    c.execute("UPDATE batches SET status = 'final'")
                    raise RuntimeError("crash mid-transaction")
            except RuntimeError:
                pass
        elif name == "restart":
            store.close()
            return Store(path)
    except StateError:
        pass  # an illegal transition changes nothing
    return store


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(op, max_size=40))
def test_counts_afterAnyOperations_equalAFullRecount(steps: list[tuple[object, ...]]) -> None:
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
        c.execute("DROP TABLE pending_counts")
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
