"""Issue 14: a sealed batch stores its leaves, not one Merkle proof per served row; a leaf's
proof is built on demand and equals the proof the node stored before (old state files too)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from prover.store import _COUNTS, _INSERT_CHUNK, Store
from prover.vectors import pack
from spotcheck.encoding import leaf_hash
from spotcheck.merkle import MerkleTree, verify

MODEL_A = b"\xa1" * 32
MODEL_B = b"\xb2" * 32


def _serve(store: Store, model: bytes, n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    inputs = rng.integers(-100, 100, size=(n, 4), dtype=np.int64)
    outputs = rng.integers(-100, 100, size=(n, 2), dtype=np.int64)
    ins = [bytes([seed, i]) * 16 for i in range(n)]
    outs = [bytes([i, seed]) * 16 for i in range(n)]

    def sign(job_ids: list[int]) -> tuple[list[bytes], bytes]:
        leaves = [leaf_hash(j, model, a, b) for j, a, b in zip(job_ids, ins, outs, strict=True)]
        return leaves, bytes([seed]) * 65

    job_ids, _ = store.record_served_many(model, inputs, outputs, ins, outs, sign)
    return job_ids


def test_sealBatch_storesNoProofPerRow_andEveryLeafsProofIsRebuilt(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    # interleaved models: a batch's jobs are not a contiguous range of ids
    for seed in range(6):
        _serve(store, MODEL_A if seed % 2 else MODEL_B, 3 + seed, seed)
    batches = [store.seal_batch(MODEL_A, 5), store.seal_batch(MODEL_A, 100)]
    batches += [store.seal_batch(MODEL_B, 1), store.seal_batch(MODEL_B, 100)]
    columns = {r[1] for r in store._conn.execute("PRAGMA table_info(served_jobs)")}
    assert "proof" not in columns
    for batch in batches:
        assert batch is not None
        jobs = store.batch_jobs(batch.local_id)
        assert [j.leaf_index for j in jobs] == list(range(batch.count))
        tree = MerkleTree([j.leaf for j in jobs])
        assert tree.root == batch.root
        for job in jobs:
            assert job.leaf_index is not None
            proof = store.leaf_proof(batch.local_id, job.leaf_index)
            assert proof == tuple(tree.proof(job.leaf_index))
            assert verify(proof, batch.root, job.leaf, job.leaf_index, batch.count)
    assert store.leaf_proof(batches[0].local_id, batches[0].count) is None  # type: ignore[union-attr]
    assert store.leaf_proof(999, 0) is None
    store.close()


def test_requestLargerThanOneInsertStatement_storesEveryRow(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    n = 2 * _INSERT_CHUNK + 3
    inputs = np.arange(n * 4, dtype=np.int64).reshape(n, 4)
    outputs = -np.arange(n * 2, dtype=np.int64).reshape(n, 2)
    ins = [i.to_bytes(32, "big") for i in range(n)]
    outs = [(i + n).to_bytes(32, "big") for i in range(n)]

    def sign(job_ids: list[int]) -> tuple[list[bytes], bytes]:
        return [
            leaf_hash(j, MODEL_A, a, b) for j, a, b in zip(job_ids, ins, outs, strict=True)
        ], b"\x05" * 65

    job_ids, served_at = store.record_served_many(MODEL_A, inputs, outputs, ins, outs, sign)
    for i, job_id in enumerate(job_ids):
        job = store.served_job(job_id)
        assert job is not None
        assert job.leaf == leaf_hash(job_id, MODEL_A, ins[i], outs[i])
        assert (job.input_hash, job.output_hash, job.signature) == (ins[i], outs[i], b"\x05" * 65)
        assert job.input_q.tolist() == inputs[i].tolist()
        assert job.output_q.tolist() == outputs[i].tolist()
        assert (job.model_id, job.served_at, job.batch_local_id) == (MODEL_A, served_at, None)
    assert store.counts() == store.recount() and store.counts()["served_jobs"] == {"pending": n}
    store.close()


#: ``served_jobs`` and ``batches`` as a node before issue 14's proofs on demand wrote them.
_OLD_SCHEMA = """
CREATE TABLE batches (
    local_id INTEGER PRIMARY KEY AUTOINCREMENT, model_id TEXT NOT NULL, root TEXT NOT NULL,
    count INTEGER NOT NULL, status TEXT NOT NULL, batch_id INTEGER UNIQUE, nonce INTEGER,
    tx_hash TEXT, challenge_deadline INTEGER, created_at REAL NOT NULL, updated_at REAL NOT NULL
);
CREATE TABLE served_jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT, model_id TEXT NOT NULL, input_hash TEXT NOT NULL,
    output_hash TEXT NOT NULL, leaf TEXT NOT NULL, signature TEXT NOT NULL,
    served_at REAL NOT NULL, batch_local_id INTEGER REFERENCES batches(local_id),
    leaf_index INTEGER, proof TEXT
);
CREATE INDEX served_jobs_pending ON served_jobs(model_id, batch_local_id);
CREATE TABLE served_vectors (
    job_id INTEGER PRIMARY KEY REFERENCES served_jobs(job_id), input_q BLOB NOT NULL,
    output_q BLOB NOT NULL
);
"""


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


@pytest.mark.parametrize("counted", [False, True], ids=["beforeCounts", "withCounts"])
def test_oldStateFile_withStoredProofs_answersTheSameJobsAndProofs(
    tmp_path: Path, counted: bool
) -> None:
    """A state file of hex text rows with a stored proof each (with or without the kept counts
    and their triggers) opens with the same jobs, the same proofs, and counts that still hold."""
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(_OLD_SCHEMA)
    leaves = [bytes([i + 1]) * 32 for i in range(5)]
    tree = MerkleTree(leaves)
    conn.execute(
        "INSERT INTO batches(model_id, root, count, status, created_at, updated_at)"
        " VALUES(?, ?, 5, 'sealed', 1.0, 1.0)",
        (_hex(MODEL_A), _hex(tree.root)),
    )
    proofs = tree.proofs_json()
    for i, leaf in enumerate(leaves):
        sealed = i < 5
        conn.execute(
            "INSERT INTO served_jobs VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (10 + i, _hex(MODEL_A), _hex(bytes([i]) * 32), _hex(bytes([9, i]) * 16),
             _hex(leaf), _hex(b"\x07" * 65), 2.0 + i, 1 if sealed else None,
             i if sealed else None, proofs[i] if sealed else None),
        )  # fmt: skip
        conn.execute(
            "INSERT INTO served_vectors VALUES(?, ?, ?)",
            (10 + i, pack(np.arange(4) + i), pack(np.arange(2) - i)),
        )
    conn.execute(
        "INSERT INTO served_jobs(job_id, model_id, input_hash, output_hash, leaf, signature,"
        " served_at) VALUES(20, ?, ?, ?, ?, ?, 9.0)",
        (_hex(MODEL_B), _hex(b"\x01" * 32), _hex(b"\x02" * 32), _hex(b"\x03" * 32),
         _hex(b"\x04" * 65)),
    )  # fmt: skip
    conn.execute(
        "INSERT INTO served_vectors VALUES(20, ?, ?)", (pack(np.zeros(4)), pack(np.zeros(2)))
    )
    if counted:
        conn.execute("CREATE TABLE onchain_jobs (job_id INTEGER PRIMARY KEY, status TEXT)")
        conn.execute("CREATE TABLE disputes (dispute_id TEXT PRIMARY KEY, status TEXT)")
        for statement in _COUNTS:
            conn.execute(statement)
    conn.commit()
    conn.close()

    store = Store(path)
    for i, leaf in enumerate(leaves):
        job = store.served_job(10 + i)
        assert job is not None
        assert (job.model_id, job.leaf, job.signature) == (MODEL_A, leaf, b"\x07" * 65)
        assert (job.input_hash, job.output_hash) == (bytes([i]) * 32, bytes([9, i]) * 16)
        assert (job.batch_local_id, job.leaf_index, job.served_at) == (1, i, 2.0 + i)
        assert job.input_q.tolist() == list(range(i, i + 4))
        assert job.output_q.tolist() == [-i, 1 - i]
        stored = tuple(bytes.fromhex(p[2:]) for p in json.loads(proofs[i]))
        assert store.leaf_proof(1, i) == stored
    assert store.pending_counts() == {MODEL_B: (1, 9.0)}
    assert store.recount()["served_jobs"] == {"pending": 1}
    # the old pending job seals into a new batch with the jobs served after the upgrade
    (later,) = _serve(store, MODEL_B, 1, 7)
    batch = store.seal_batch(MODEL_B, 10)
    assert batch is not None and batch.count == 2
    jobs = store.batch_jobs(batch.local_id)
    assert [j.job_id for j in jobs] == [20, later]
    assert store.leaf_proof(batch.local_id, 1) == (b"\x03" * 32,)
    _serve(store, MODEL_A, 2, 8)
    assert store.counts() == store.recount()
    assert store.pending_counts() == store.pending_recount()
    assert store.counts()["served_jobs"] == {"pending": 2}
    assert store.seal_batch(MODEL_A, 10) is not None
    assert store.counts() == store.recount() and store.counts()["served_jobs"]["pending"] == 0
    store.close()
