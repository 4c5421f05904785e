"""Where the node's store spends its microseconds per job: the bulk insert of a batched request
and the sealing of a batch (its Python part: the tree), and the cost of one leaf's Merkle proof
built on demand from the stored leaves (issue 14).

    .venv/bin/python benchmarks/bench_node_seal.py --jobs 4096 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prover.store import Store  # noqa: E402
from spotcheck.merkle import MerkleTree  # noqa: E402

MODEL_ID = bytes.fromhex("5c" * 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4096, help="jobs per batch")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.jobs
    inputs = np.zeros((n, 4), dtype=np.int64)
    hashes = [os.urandom(32) for _ in range(n)]

    def sign(job_ids: list[int]) -> tuple[list[bytes], bytes]:
        return [os.urandom(32) for _ in job_ids], b"\x01" * 65

    with tempfile.TemporaryDirectory(prefix="spotcheck-seal-") as tmp:
        store = Store(Path(tmp) / "node.sqlite")
        for _ in range(args.rounds):
            t = time.process_time()
            store.record_served_many(MODEL_ID, inputs, inputs[:, :2], hashes, hashes, sign)
            insert = time.process_time() - t
            t = time.process_time()
            batch = store.seal_batch(MODEL_ID, n)
            seal = time.process_time() - t
            print(f"insert {1e6 * insert / n:.1f} us/job, seal {1e6 * seal / n:.1f} us/job")
        assert batch is not None
        leaves = [job.leaf for job in store.batch_jobs(batch.local_id)]
        t = time.process_time()
        MerkleTree(leaves)
        build = time.process_time() - t
        store._trees.clear()  # a proof asked after a restart: the tree is rebuilt from the rows
        t = time.process_time()
        store.leaf_proof(batch.local_id, n // 2)
        cold = time.process_time() - t
        t = time.process_time()
        store.leaf_proof(batch.local_id, n // 3)
        warm = time.process_time() - t
        store.close()
    print(
        f"seal's Python part: tree {1e6 * build / n:.2f} us/job (the rest of seal is SQLite); "
        f"one leaf's proof on demand: {1e3 * cold:.1f} ms cold (rows read, tree rebuilt), "
        f"{1e6 * warm:.0f} us with the tree kept; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
