"""The node stays flat over time (issue 14): counts without a scan, listings streamed from a
read snapshot with the same bytes, pruning of final batches (410), the public URL check."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from prover.api import ApiContext, _leaf, create_app, listing_bytes
from prover.defence import SelfAuditor
from prover.metrics import NodeMetrics
from prover.retention import Retention
from prover.startup import check_public_url
from prover.store import BatchState, Store, _add_pending
from prover.vectors import pack
from spotcheck.errors import StartupError
from spotcheck.wire import BatchLeaf, BatchListing

MODEL = bytes.fromhex("aa" * 32)
NODE = "0x" + "12" * 20


def _fill(store: Store, jobs: int, width: int = 4) -> None:
    """``jobs`` served jobs in one transaction (what many requests would leave)."""
    rng = np.random.default_rng(jobs)
    with store._write() as c:
        c.executemany(
            "INSERT INTO served_jobs(job_id, model_id, input_hash, output_hash, leaf,"
            " signature, served_at) VALUES(?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    "0x" + MODEL.hex(),
                    b"\x01" * 32,
                    b"\x02" * 32,
                    i.to_bytes(32, "big"),
                    b"\x03" * 65,
                    time.time(),
                )
                for i in range(1, jobs + 1)
            ],
        )
        _add_pending(c, "0x" + MODEL.hex(), jobs)  # what the store's own inserts do
        c.executemany(
            "INSERT INTO served_vectors(job_id, input_q, output_q) VALUES(?, ?, ?)",
            [
                (i, pack(rng.integers(-(2**40), 2**40, width)), pack(rng.integers(-9, 9, 2)))
                for i in range(1, jobs + 1)
            ],
        )


def _vm_steps(store: Store, call: Any) -> int:
    """SQLite virtual-machine instructions ``call`` runs (a scan grows with the rows)."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    store._conn.set_progress_handler(count, 10)
    try:
        call()
    finally:
        store._conn.set_progress_handler(None, 0)
    return steps


def test_counts_andPendingCounts_doNotGrowWithTheRows(tmp_path: Path) -> None:
    small, large = Store(tmp_path / "small.sqlite"), Store(tmp_path / "large.sqlite")
    _fill(small, 1_000)
    _fill(large, 30_000)
    for store in (small, large):
        store.seal_batch(MODEL, 500)
    assert large.counts()["served_jobs"] == {"pending": 29_500}
    assert large.pending_counts()[MODEL][0] == 29_500
    for call in ("counts", "pending_counts"):
        a = _vm_steps(small, getattr(small, call))
        b = _vm_steps(large, getattr(large, call))
        assert b <= a + 5, f"{call}: {a} -> {b} VM steps for 30x the rows"


def _committed_batch(store: Store, jobs: int) -> int:
    _fill(store, jobs)
    batch = store.seal_batch(MODEL, jobs)
    assert batch is not None
    store.mark_batch_committed(batch.local_id, 7, "0xtx", 123)
    return batch.local_id


def _app(store: Store) -> TestClient:
    server = SimpleNamespace(signer=SimpleNamespace(address=NODE))
    ctx = ApiContext(
        server,  # type: ignore[arg-type]
        store,
        NodeMetrics(),
        SelfAuditor(None, 0.0, {}),  # type: ignore[arg-type]
    )
    return TestClient(create_app(ctx))


def _old_listing(store: Store) -> bytes:
    """The listing as the node rendered it before streaming: the whole BatchListing."""
    app = FastAPI()

    @app.get("/v1/batches/{batch_id}", response_model=BatchListing)
    def batch(batch_id: int) -> BatchListing:
        b = store.batch_by_chain_id(batch_id)
        assert b is not None
        return BatchListing(
            batchId=batch_id,
            modelId=b.model_id,
            root=b.root,
            count=b.count,
            final=b.status == BatchState.FINAL,
            node=NODE,
            leaves=[BatchLeaf.model_construct(**_leaf(j)) for j in store.batch_jobs(b.local_id)],
        )

    return TestClient(app).get("/v1/batches/7").content


#: The pending-count triggers of a database written before the counts were kept per statement.
OLD_PENDING_TRIGGERS = """
CREATE TRIGGER served_pending_ins AFTER INSERT ON served_jobs WHEN NEW.batch_local_id IS NULL
BEGIN INSERT INTO pending_counts(model_id, n) VALUES(NEW.model_id, 1)
ON CONFLICT(model_id) DO UPDATE SET n = n + 1; END;
CREATE TRIGGER served_pending_upd AFTER UPDATE OF batch_local_id, model_id ON served_jobs
WHEN (OLD.batch_local_id IS NULL) != (NEW.batch_local_id IS NULL) BEGIN
UPDATE pending_counts SET n = n - 1 WHERE model_id = OLD.model_id AND OLD.batch_local_id IS NULL;
END;
"""


def test_pendingCounts_ofADatabaseWithTheOldTriggers_areNotCountedTwice(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    _fill(store, 10)
    store._conn.executescript(OLD_PENDING_TRIGGERS)
    store.close()
    store = Store(tmp_path / "node.sqlite")  # drops the triggers: the writes keep the counts
    q = np.arange(12, dtype=np.int64).reshape(3, 4)
    hashes = [bytes([i]) * 32 for i in range(3)]
    store.record_served_many(MODEL, q, q, hashes, hashes, lambda ids: (hashes, b"\x05" * 65))
    store.seal_batch(MODEL, 4)
    assert store.pending_counts()[MODEL][0] == store.pending_recount()[MODEL][0] == 9
    assert store.counts()["served_jobs"] == {"pending": 9}


@pytest.mark.parametrize("jobs", [1, 3, 700])
def test_listing_streamed_isByteForByteTheOldListing(tmp_path: Path, jobs: int) -> None:
    store = Store(tmp_path / "node.sqlite")
    _committed_batch(store, jobs)
    answer = _app(store).get("/v1/batches/7")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.content == _old_listing(store)
    parsed = BatchListing.model_validate_json(answer.content)  # what the challenger parses
    assert len(parsed.leaves) == jobs and parsed.count == jobs and parsed.node == NODE


def test_listing_readsASnapshot_notTheRowsWrittenWhileItStreams(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    local_id = _committed_batch(store, 600)
    b = store.batch(local_id)
    assert b is not None
    header = BatchListing.model_construct(
        batchId=7,
        modelId=b.model_id,
        root=b.root,
        count=b.count,
        final=False,
        node=NODE,
        leaves=[],
    )
    stream = listing_bytes(header, store.batch_snapshot(local_id), chunk=100)
    first = next(stream)
    with store._write() as c:  # the writer is not blocked by the open listing
        c.execute("DELETE FROM served_vectors")
    body = first + b"".join(stream)
    assert len(json.loads(body)["leaves"]) == 600


def _peak_listing(store: Store, local_id: int) -> int:
    b = store.batch(local_id)
    assert b is not None
    header = BatchListing.model_construct(
        batchId=7,
        modelId=b.model_id,
        root=b.root,
        count=b.count,
        final=False,
        node=NODE,
        leaves=[],
    )
    tracemalloc.start()
    try:
        size = sum(len(piece) for piece in listing_bytes(header, store.batch_snapshot(local_id)))
        assert size > 0
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_listing_memory_doesNotGrowWithTheBatch(tmp_path: Path) -> None:
    small = _peak_listing(s := Store(tmp_path / "a.sqlite"), _committed_batch(s, 2_000))
    large = _peak_listing(s := Store(tmp_path / "b.sqlite"), _committed_batch(s, 20_000))
    assert large < 1.5 * small, f"peak {small} B for 2k leaves, {large} B for 20k"


def _final(store: Store, local_id: int) -> None:
    store.mark_batch_final(local_id)


def test_prune_finalBatchPastRetention_deletesVectorsInChunks_andListingIs410(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "node.sqlite")
    local_id = _committed_batch(store, 25)
    http = _app(store)
    now = [time.time()]
    retention = Retention(store, 3600, chunk=10, clock=lambda: now[0])
    assert retention.step() == 0  # committed, not final: never pruned
    _final(store, local_id)
    assert retention.step() == 0  # final, inside the retention
    assert http.get("/v1/batches/7").status_code == 200
    now[0] += 3601
    assert [retention.step() for _ in range(4)] == [10, 10, 5, 0]
    gone = http.get("/v1/batches/7")
    assert gone.status_code == 410
    assert gone.json()["detail"] == (
        "batch 7 is final and its vectors were pruned after this node's retention"
    )
    assert http.get("/v1/batches/7/jobs/1").status_code == 410
    job = http.get("/v1/jobs/1")
    assert job.status_code == 410
    assert job.json()["detail"] == "job 1 is final and its vectors were pruned"
    assert http.get("/v1/jobs/999").status_code == 404
    rows = store._read("SELECT COUNT(*) FROM served_vectors")
    assert rows[0][0] == 0
    assert store.batch(local_id).pruned  # type: ignore[union-attr]
    assert len(store._read("SELECT * FROM served_jobs")) == 25  # leaves and receipts stay


def test_prune_neverABatchWithAnOpenLeafRequestOrDispute(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    local_id = _committed_batch(store, 3)
    _final(store, local_id)
    store.record_leaf_request(b"\x09" * 32, 7, 1, 10)
    later = time.time() + 10
    assert store.prune_final(later, 100) == 0
    store.mark_leaf_request(b"\x09" * 32, "revealed")
    store.record_dispute(b"\x08" * 32, 1, 7, 0, 10)
    assert store.prune_final(later, 100) == 0
    store.mark_dispute_lost(b"\x08" * 32, "lost")
    assert store.prune_final(later, 100) == 3


def test_prune_survivesARestart_midBatch(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    local_id = _committed_batch(store, 9)
    _final(store, local_id)
    later = time.time() + 10
    assert store.prune_final(later, 4) == 4
    store.close()
    store = Store(tmp_path / "node.sqlite")
    assert store.batch(local_id).pruned  # type: ignore[union-attr]
    assert store.prune_final(later, 100) == 5
    assert store.prune_final(later, 100) == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9545",
        "http://localhost:9545",
        "http://0.0.0.0:9545",
        "http://[::1]:9545",
        "http://[::]:80",
        "http://127.8.0.1",
        "http://api.localhost",
    ],
)
def test_public_url_loopbackOrUnspecified_refusedOnARealChain(url: str) -> None:
    with pytest.raises(StartupError, match="loopback or unspecified host") as err:
        check_public_url(url, "http://127.0.0.1:9545", 1)
    assert "\n" not in str(err.value)
    assert check_public_url(url, "http://127.0.0.1:9545", 31337) == url.rstrip("/")


def test_public_url_missing_refusedOnARealChain_defaultedOnADevChain() -> None:
    with pytest.raises(StartupError, match=r"http\.public_url is not set"):
        check_public_url(None, "http://127.0.0.1:9545", 11155111)
    assert check_public_url(None, "http://127.0.0.1:9545", 31337) == "http://127.0.0.1:9545"


@pytest.mark.parametrize("url", ["ftp://node.example.org", "node.example.org", "https://"])
def test_public_url_notHttpWithAHost_refused(url: str) -> None:
    with pytest.raises(StartupError, match="is not an http"):
        check_public_url(url, "http://127.0.0.1:9545", 31337)


def test_public_url_publicHost_accepted() -> None:
    assert check_public_url("https://node.example.org/", "x", 1) == "https://node.example.org"
    assert check_public_url("http://203.0.113.7:9545", "x", 1) == "http://203.0.113.7:9545"


def test_buildNode_onARealChainWithALoopbackUrl_refusesBeforeOpeningAnything(
    tmp_path: Path,
) -> None:
    from prover.config import load_settings
    from prover.runner import build_node

    settings = load_settings(
        None, db_path=tmp_path / "node.sqlite", http={"public_url": "http://127.0.0.1:9545"}
    )
    contracts = SimpleNamespace(deployment=SimpleNamespace(chain_id=10))
    with pytest.raises(StartupError, match="loopback or unspecified host"):
        build_node(settings, None, contracts)  # type: ignore[arg-type]
    assert not (tmp_path / "node.sqlite").exists()


def test_nodeStep_runsOnePruningPass_evenWhenOtherPhasesFail(tmp_path: Path) -> None:
    from unittest.mock import MagicMock

    from prover.service import NodeService

    store = Store(tmp_path / "node.sqlite")
    local_id = _committed_batch(store, 5)
    _final(store, local_id)
    retention = Retention(store, 1.0, chunk=3, clock=lambda: time.time() + 2)
    service = NodeService(
        MagicMock(),  # a chain that answers nothing useful: those phases fail, logged
        store,
        MagicMock(),
        MagicMock(),
        backend=None,
        auditor=MagicMock(),
        metrics=NodeMetrics(),
        prune=retention.step,
    )
    service.step()
    assert store._read("SELECT COUNT(*) FROM served_vectors")[0][0] == 2
    report = service.step()
    assert "prune" not in report.failed
    assert store._read("SELECT COUNT(*) FROM served_vectors")[0][0] == 0


def test_listing_aReaderTooSlow_isCutOff_andTheSnapshotClosed(tmp_path: Path) -> None:
    from prover.api import ListingTooSlowError

    store = Store(tmp_path / "node.sqlite")
    local_id = _committed_batch(store, 600)
    b = store.batch(local_id)
    assert b is not None
    header = BatchListing.model_construct(
        batchId=7,
        modelId=b.model_id,
        root=b.root,
        count=b.count,
        final=False,
        node=NODE,
        leaves=[],
    )
    now = [0.0]
    snapshot = store.batch_snapshot(local_id)
    stream = listing_bytes(header, snapshot, chunk=100, max_s=30, clock=lambda: now[0])
    next(stream), next(stream)
    now[0] = 31.0  # the reader stalled
    with pytest.raises(ListingTooSlowError, match="listing not read within 30 s"):
        list(stream)
    with pytest.raises(Exception, match="closed"):
        snapshot._conn.execute("SELECT 1")
