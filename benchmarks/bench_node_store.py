"""The node's store as it grows: step-time reads and batch listings, old way against new.

    .venv/bin/python benchmarks/bench_node_store.py                  # 10k, 100k, 300k rows
    .venv/bin/python benchmarks/bench_node_store.py --rows 10000 --leaves 10000 --json out.json

Measured on one core, on one database per size (served jobs sealed in batches of 256, a tail
of 200 pending, ``--width`` int64 input elements per job; written with bulk SQL, the counts
kept as a node's own writes keep them):

1. ``counts()`` and ``pending_counts()`` (what every step of the node's loop and the work gate
   read under the serving lock): the old queries (``GROUP BY`` over the tables, a scan of the
   served-jobs index) against the kept counts; median of ``--repeat`` calls.
2. the price on the writes: CPU of ``seal_batch`` of 256 jobs with and without the count
   upkeep and the partial served-jobs indexes.
3. ``GET /v1/batches/{id}`` for batches of ``--leaves`` leaves: the old way (every leaf as a
   model, the whole ``BatchListing`` rendered to JSON at once, as FastAPI did) against the
   stream from a read snapshot (``prover.api.listing_bytes``): CPU time, and peak Python
   allocation (tracemalloc, a separate run) while the whole body is produced.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prover.api import _json, _leaf, listing_bytes  # noqa: E402
from prover.store import BatchState, Store, _add_pending  # noqa: E402
from prover.vectors import pack  # noqa: E402
from spotcheck.encoding import from_hex, to_hex  # noqa: E402
from spotcheck.wire import BatchLeaf, BatchListing  # noqa: E402

MODEL = b"\x11" * 32
PENDING = 200
cpu = time.process_time
NODE = "0x" + "12" * 20


def fill(store: Store, rows: int, batch: int, width: int) -> list[int]:
    """``rows`` served jobs: all but ``PENDING`` in final batches of ``batch``; local ids."""
    rng = np.random.default_rng(rows)
    now = time.time()
    sealed = rows - PENDING
    local_ids: list[int] = []
    with store._write() as c:
        for first in range(1, sealed + 1, batch):
            cur = c.execute(
                "INSERT INTO batches(model_id, root, count, status, batch_id, created_at,"
                " updated_at, final_at) VALUES(?, ?, ?, 'final', ?, ?, ?, ?)",
                (to_hex(MODEL), to_hex(b"\x00" * 32), 0, first, now, now, now),
            )
            local_ids.append(int(cur.lastrowid or 0))
        for start in range(0, rows, 10_000):
            ids = range(start + 1, min(rows, start + 10_000) + 1)
            c.executemany(
                "INSERT INTO served_jobs(job_id, model_id, input_hash, output_hash, leaf,"
                " signature, served_at, batch_local_id, leaf_index)"
                " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i,
                        to_hex(MODEL),
                        b"\x01" * 32,
                        b"\x02" * 32,
                        i.to_bytes(32, "big"),
                        b"\x03" * 65,
                        now,
                        None if i > sealed else local_ids[(i - 1) // batch],
                        None if i > sealed else (i - 1) % batch,
                    )
                    for i in ids
                ],
            )
            c.executemany(
                "INSERT INTO served_vectors(job_id, input_q, output_q) VALUES(?, ?, ?)",
                [
                    (i, pack(rng.integers(-(2**15), 2**15, width)), pack(rng.integers(-9, 9, 2)))
                    for i in ids
                ],
            )
        c.execute(
            "UPDATE batches SET count = (SELECT COUNT(*) FROM served_jobs"
            " WHERE batch_local_id = batches.local_id)"
        )
        _add_pending(c, to_hex(MODEL), rows - sealed)  # what the store's own inserts do
    return local_ids


#: The served-jobs index the old queries had (the store's partial indexes are new: the old side
#: creates the old index and pins its plan, keeping the comparison with the code before issue
#: 14 honest).
OLD_INDEX = "INDEXED BY served_jobs_pending"
OLD_INDEX_SQL = (
    "CREATE INDEX IF NOT EXISTS served_jobs_pending ON served_jobs(model_id, batch_local_id)"
)


def old_counts(store: Store) -> dict[str, dict[str, int]]:
    """``Store.counts`` before issue 14 (a scan of each table)."""
    out: dict[str, dict[str, int]] = {}
    for table in ("onchain_jobs", "batches", "disputes"):
        rows = store._read(f"SELECT status, COUNT(*) FROM {table} GROUP BY status")
        out[table] = {r[0]: int(r[1]) for r in rows}
    rows = store._read(f"SELECT COUNT(*) FROM served_jobs {OLD_INDEX} WHERE batch_local_id IS NULL")
    out["served_jobs"] = {"pending": int(rows[0][0])}
    return out


def old_pending_counts(store: Store) -> dict[bytes, tuple[int, float]]:
    """``Store.pending_counts`` before issue 14."""
    rows = store._read(
        f"SELECT model_id, COUNT(*), MIN(served_at) FROM served_jobs {OLD_INDEX}"
        " WHERE batch_local_id IS NULL GROUP BY model_id"
    )
    return {from_hex(r[0]): (int(r[1]), float(r[2])) for r in rows}


def median_ms(
    fn: Callable[[], Any], repeat: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times) * 1e3


def bench_counts(rows: int, folder: Path, width: int, repeat: int) -> dict[str, float]:
    store = Store(folder / f"counts-{rows}.sqlite")
    fill(store, rows, 256, width)
    with store._write() as c:
        c.execute(OLD_INDEX_SQL)
    assert store.counts() == old_counts(store)
    assert store.pending_counts()[MODEL][0] == old_pending_counts(store)[MODEL][0] == PENDING
    out = {
        "rows": rows,
        "counts_old_ms": median_ms(lambda: old_counts(store), repeat),
        "counts_new_ms": median_ms(store.counts, repeat),
        "pending_old_ms": median_ms(lambda: old_pending_counts(store), repeat),
        "pending_new_ms": median_ms(store.pending_counts, repeat),
    }
    store.close()
    return out


def to_old_schema(store: Store) -> None:
    """Drop what issue 14 added to the write path (the count triggers, the partial indexes),
    back to the one served-jobs index from before."""
    with store._write() as c:
        triggers = c.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
        for (name,) in triggers:
            c.execute(f"DROP TRIGGER {name}")
        c.execute("DROP INDEX served_jobs_leaves")
        c.execute("DROP INDEX served_jobs_unbatched")
        c.execute(OLD_INDEX_SQL)


def bench_seal(folder: Path, batches: int = 60) -> dict[str, float]:
    """CPU per ``seal_batch`` of 256 jobs (the writes the triggers and the index cost)."""
    out: dict[str, float] = {}
    for side in ("old", "new"):
        store = Store(folder / f"seal-{side}.sqlite")
        if side == "old":
            to_old_schema(store)
        with store._write() as c:
            c.executemany(
                "INSERT INTO served_jobs(job_id, model_id, input_hash, output_hash, leaf,"
                " signature, served_at) VALUES(?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i,
                        to_hex(MODEL),
                        b"\x01" * 32,
                        b"\x02" * 32,
                        i.to_bytes(32, "big"),
                        b"\x03" * 65,
                        0.0,
                    )
                    for i in range(1, 256 * batches + 1)
                ],
            )
            _add_pending(c, to_hex(MODEL), 256 * batches)
        start = cpu()
        for _ in range(batches):
            store.seal_batch(MODEL, 256)
        out[f"seal_{side}_ms"] = (cpu() - start) / batches * 1e3
        store.close()
    return out


def old_listing(store: Store, local_id: int) -> bytes:
    """The listing as the route built it before issue 14: all leaves, then one JSON render."""
    b = store.batch(local_id)
    assert b is not None
    listing = BatchListing(
        batchId=1,
        modelId=b.model_id,
        root=b.root,
        count=b.count,
        final=b.status == BatchState.FINAL,
        node=NODE,
        leaves=[BatchLeaf.model_construct(**_leaf(j)) for j in store.batch_jobs(local_id)],
    )
    return _json(listing.model_dump(mode="json"))


def new_listing(store: Store, local_id: int) -> Iterable[bytes]:
    b = store.batch(local_id)
    assert b is not None
    header = BatchListing.model_construct(
        batchId=1,
        modelId=b.model_id,
        root=b.root,
        count=b.count,
        final=b.status == BatchState.FINAL,
        node=NODE,
        leaves=[],
    )
    return listing_bytes(header, store.batch_snapshot(local_id))


def _drain(pieces: Iterable[bytes] | bytes) -> int:
    if isinstance(pieces, bytes):
        return len(pieces)
    return sum(len(p) for p in pieces)


def _peak(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bench_listing(leaves: int, folder: Path, width: int) -> dict[str, float]:
    store = Store(folder / f"listing-{leaves}.sqlite")
    local_id = fill(store, leaves + PENDING, leaves, width)[0]
    old = old_listing(store, local_id)
    assert b"".join(new_listing(store, local_id)) == old  # the same bytes
    out = {
        "leaves": leaves,
        "body_mb": len(old) / 1e6,
        # CPU time of this process (the work is all in it; wall time on a shared machine is not)
        "old_s": median_ms(lambda: _drain(old_listing(store, local_id)), 3, cpu) / 1e3,
        "new_s": median_ms(lambda: _drain(new_listing(store, local_id)), 3, cpu) / 1e3,
        "old_peak_mb": _peak(lambda: _drain(old_listing(store, local_id))) / 1e6,
        "new_peak_mb": _peak(lambda: _drain(new_listing(store, local_id))) / 1e6,
    }
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 300_000])
    parser.add_argument("--leaves", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--width", type=int, default=16, help="input elements per job")
    parser.add_argument("--repeat", type=int, default=20, help="calls per median")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"counts": [], "listing": [], "seal": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("rows      counts old -> new (ms)   pending_counts old -> new (ms)")
        for rows in args.rows:
            r = bench_counts(rows, folder, args.width, args.repeat)
            results["counts"].append(r)
            print(
                f"{rows:>7,}   {r['counts_old_ms']:8.2f} -> {r['counts_new_ms']:6.3f}"
                f"          {r['pending_old_ms']:8.2f} -> {r['pending_new_ms']:6.3f}"
            )
        seal = bench_seal(folder)
        results["seal"].append(seal)
        print(
            f"seal_batch(256) CPU: old {seal['seal_old_ms']:.2f} ms -> new "
            f"{seal['seal_new_ms']:.2f} ms"
        )
        print("leaves    body MB   CPU old -> new (s)    peak alloc old -> new (MB)")
        for leaves in args.leaves:
            r = bench_listing(leaves, folder, args.width)
            results["listing"].append(r)
            print(
                f"{leaves:>7,}   {r['body_mb']:7.1f}   {r['old_s']:6.2f} -> {r['new_s']:6.2f}"
                f"        {r['old_peak_mb']:8.1f} -> {r['new_peak_mb']:6.2f}"
            )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
