"""Where the node's store spends its microseconds per job: the bulk insert of a batched request
and the sealing of a batch, split into its Python part and SQLite's (issue 14).

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
from spotcheck.encoding import from_hex  # noqa: E402
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
            store.seal_batch(MODEL_ID, n)
            seal = time.process_time() - t
            print(f"insert {1e6 * insert / n:.1f} us/job, seal {1e6 * seal / n:.1f} us/job")
        store.close()
    texts = ["0x" + os.urandom(32).hex() for _ in range(n)]
    t = time.process_time()
    leaves = [from_hex(x) for x in texts]
    parse = time.process_time() - t
    t = time.process_time()
    tree = MerkleTree(leaves)
    build = time.process_time() - t
    t = time.process_time()
    tree.proofs_json()
    proofs = time.process_time() - t
    print(
        f"seal's Python part: leaves from hex {1e6 * parse / n:.2f}, tree {1e6 * build / n:.2f}, "
        f"proofs as JSON {1e6 * proofs / n:.2f} us/job (the rest of seal is SQLite); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
