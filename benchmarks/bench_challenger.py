"""How fast the challenger follows commitments and re-executes jobs on this machine.

    .venv/bin/python benchmarks/bench_challenger.py                # defaults
    .venv/bin/python benchmarks/bench_challenger.py --jobs 20000 --json out.json

Measured, each on one core:

1. follow (on-chain jobs): record N ResultCommitted events (the follower's handler, one SQLite
   transaction) and decide their samples (keccak per job, one transition per job). RPC time
   is not included: it depends on the endpoint; the follower reads up to 2000 blocks per call.
2. follow (batches): download and check a served listing of N leaves (parse and range-check
   every element, check the input domain, hash every input and output, rebuild the positional
   Merkle tree, compare with the committed root) and record it with sampling decisions by
   position and the sampled leaves' proofs.
3. hostile nodes: one fetch step while N batches are served by a node that drips one byte
   every 50 ms (each listing cut at its 10 s total deadline in a worker thread): how long the
   tick is held up (the disputes and settlements that follow it wait that long).
4. re-execute (tiny MLP, 4-8-2): onnxruntime screen alone, ezkl witness alone, and the
   verdict on honest outputs (the screen decides) and on outputs outside tau/2 of the screen
   (the witness decides).
5. growth (issue 14, ``--growth 10000,100000``): record that many batch leaves (batches of
   1,000, 5 % sampled) and read the job counts each tick's metrics and ``/status`` read, side by
   side with the old way (a row per skipped leaf, a ``GROUP BY`` over all rows): the record
   time, the count read's time in µs (median of 21) and the database size.

    .venv/bin/python benchmarks/bench_challenger.py --only growth --growth 10000,100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from challenger.batches import BatchClient, Domain  # noqa: E402
from challenger.sampling import SamplingPolicy  # noqa: E402
from challenger.service import Challenger, Options, StepReport  # noqa: E402
from challenger.store import BatchState, Store  # noqa: E402
from spotcheck.encoding import input_hash, leaf_hash, onchain_job_key, output_hash  # noqa: E402
from spotcheck.follower import open_db  # noqa: E402
from spotcheck.merkle import MerkleTree  # noqa: E402

MODEL = b"\x11" * 32


def _rate(n: int, fn: Callable[[], Any]) -> tuple[float, float]:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return n / seconds, seconds


def bench_follow_onchain(n: int, folder: Path) -> dict[str, float]:
    store = Store(open_db(folder / "onchain.sqlite"))
    policy = SamplingPolicy(secret=b"\x01" * 32, default_rate=0.05)
    x, y = [1, 2, 3, 4], [5, 6]

    def record() -> None:
        store.conn.execute("BEGIN IMMEDIATE")
        for j in range(n):
            Store.record_request(store.conn, j, MODEL, x)
            Store.record_onchain_commit(
                store.conn,
                job_key=onchain_job_key(j),
                job_id=j,
                node="0xn",
                output_q=y,
                output_hash=output_hash(y),
                challenge_deadline=10**9,
                commit_block=j // 10,
            )
        store.conn.execute("COMMIT")

    class _Chain:  # the seed block hash is the only chain read of the sampling step
        def block_hash(self, number: int) -> bytes:
            return number.to_bytes(32, "big")

    challenger = Challenger(
        store=store,
        chain=_Chain(),  # type: ignore[arg-type]
        policy=policy,
        reexecutor_for=lambda _m: None,
        options=Options(),
    )

    def sample() -> None:
        challenger.sample(10**9, StepReport())

    rec_rate, _ = _rate(n, record)
    smp_rate, _ = _rate(n, sample)
    both = 1 / (1 / rec_rate + 1 / smp_rate)
    return {"record_per_s": rec_rate, "sample_per_s": smp_rate, "commitments_per_s": both}


def bench_follow_batch(n: int, folder: Path) -> dict[str, float]:
    import httpx

    leaves = [(j, [j % 7, 1, 2, 3], [j % 5, 9]) for j in range(n)]
    hashes = [leaf_hash(j, MODEL, input_hash(a), output_hash(b)) for j, a, b in leaves]
    root = MerkleTree(hashes).root
    body = {"leaves": [{"jobId": j, "inputQ": a, "outputQ": b} for j, a, b in leaves]}
    client = BatchClient(transport=httpx.MockTransport(lambda _r: httpx.Response(200, json=body)))
    store = Store(open_db(folder / "batch.sqlite"))
    Store.record_batch(
        store.conn,
        batch_id=1,
        model_id=MODEL,
        node="0xn",
        root=root,
        count=n,
        uri="http://n",
        challenge_deadline=10**9,
        commit_block=1,
    )
    (batch,) = store.batches(BatchState.SEEN)
    policy = SamplingPolicy(secret=b"\x01" * 32, default_rate=0.05)
    seed = b"\x02" * 32

    domain = Domain(input_len=4, output_len=2, in_lo=-(2**20), in_hi=2**20)

    def fetch_and_record() -> None:
        import dataclasses

        from spotcheck.encoding import batch_leaf_key

        def decide(index: int) -> bool:
            return policy.decide(MODEL, seed, batch_leaf_key(1, index))

        fetched = client.fetch(batch, domain)
        decided = []
        for leaf in fetched.leaves:
            sampled = decide(leaf.index)
            if sampled:
                leaf = dataclasses.replace(leaf, proof=fetched.tree.proof(leaf.index))
            decided.append((leaf, sampled))
        store.fetched_batch(batch, decided)

    rate, seconds = _rate(n, fetch_and_record)
    return {"leaves_per_s": rate, "seconds": seconds}


def bench_hostile_nodes(n: int, folder: Path) -> dict[str, float]:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from challenger.batches import Fetcher

    class Drip(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(400):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    store = Store(open_db(folder / "hostile.sqlite"))
    for b in range(n):
        Store.record_batch(
            store.conn,
            batch_id=b,
            model_id=MODEL,
            node=f"0x{b:040x}",  # one node each: every listing runs at once
            root=b"\x01" * 32,
            count=4,
            uri=uri,
            challenge_deadline=10**9,
            commit_block=1,
        )

    class _Chain:
        def timestamp(self) -> int:
            return 1000

        def block_hash(self, number: int) -> bytes:
            return number.to_bytes(32, "big")

        def model(self, model_id: bytes) -> Any:
            from spotcheck.chain import RegisteredModel

            return RegisteredModel(
                model_id=model_id,
                input_len=4,
                output_len=2,
                input_scale=7,
                output_scale=7,
                tau=2,
                challenge_window=10,
                proof_window=100,
                bounty_bps=2500,
            )

    challenger = Challenger(
        store=store,
        chain=_Chain(),  # type: ignore[arg-type]
        policy=SamplingPolicy(secret=b"\x01" * 32, default_rate=0.05),
        reexecutor_for=lambda _m: object(),  # type: ignore[arg-type,return-value]
        options=Options(),
        fetcher=Fetcher(BatchClient(), workers=max(8, n)),
    )
    start = time.perf_counter()
    challenger.fetch_batches(10**6, StepReport())
    held = time.perf_counter() - start
    challenger.close()
    server.shutdown()
    return {"dripping_batches": float(n), "tick_held_s": held}


def bench_reexecute(n: int, folder: Path) -> dict[str, float]:
    import numpy as np

    from challenger.reexec import ModelReexecutor
    from challenger.verdict import check_output
    from spotcheck.encoding import quantize
    from tests.fixtures import models
    from verifier.artifacts import build_artifacts
    from verifier.srs import SrsSource
    from verifier.tolerance import measure

    artifacts = build_artifacts(models.build("tiny_mlp", folder), srs=SrsSource.dev())
    tau = measure(artifacts, random_samples=20).tau
    reexec = ModelReexecutor(artifacts)
    rng = np.random.default_rng(0)
    xs = [
        quantize(rng.uniform(-1, 1, artifacts.input_len), artifacts.input_scale) for _ in range(n)
    ]
    honest = [reexec.screen_output(x) for x in xs]
    far = [[v + tau for v in y] for y in honest]  # past the screen, within 2 tau: witness decides
    screen_rate, _ = _rate(n, lambda: [reexec.screen_output(x) for x in xs])
    witness_n = max(1, n // 10)
    witness_rate, _ = _rate(witness_n, lambda: [reexec.witness_output(x) for x in xs[:witness_n]])
    verdict_rate, _ = _rate(
        n, lambda: [check_output(reexec, x, y, tau) for x, y in zip(xs, honest, strict=True)]
    )
    witness_verdict_rate, _ = _rate(
        witness_n,
        lambda: [
            check_output(reexec, x, y, tau)
            for x, y in zip(xs[:witness_n], far[:witness_n], strict=True)
        ],
    )
    return {
        "tau": tau,
        "onnxruntime_screen_per_s": screen_rate,
        "witness_per_s": witness_rate,
        "verdict_honest_per_s": verdict_rate,
        "verdict_needing_witness_per_s": witness_verdict_rate,
    }


def _growth_store(path: Path, legacy: bool) -> Store:
    store = Store(open_db(path))
    if legacy:  # as before issue 14: no counting triggers
        for name in ("ch_jobs_count_ins", "ch_jobs_count_del", "ch_jobs_count_upd"):
            store.conn.execute(f"DROP TRIGGER {name}")
    return store


def _record_leaves(store: Store, n: int, per_batch: int, legacy: bool) -> None:
    """``n`` leaves in batches of ``per_batch``, 1 in 20 sampled (a 5 % rate)."""
    from challenger.store import JobState, Leaf, _insert_leaf_job
    from spotcheck.encoding import batch_leaf_key

    proof = [bytes([i]) * 32 for i in range(10)]
    for b in range(n // per_batch):
        Store.record_batch(
            store.conn, batch_id=b, model_id=MODEL, node="0xn", root=b"\x01" * 32,
            count=per_batch, uri="http://n", challenge_deadline=10**9, commit_block=b,
        )  # fmt: skip
        batch = store.batch(b)
        assert batch is not None
        decided = []
        for i in range(per_batch):
            leaf = Leaf(i, b * per_batch + i, [i % 7, 1, 2, 3], [i % 5, 9], b"\x0a" * 32,
                        b"\x0b" * 32, proof)  # fmt: skip
            decided.append((leaf, i % 20 == 0))
        store.fetched_batch(batch, decided)
        if legacy:  # the old code wrote a row for every leaf not sampled as well
            with store.transaction() as conn:
                for leaf, sampled in decided:
                    if not sampled:
                        _insert_leaf_job(
                            conn, job_key=batch_leaf_key(b, leaf.index), batch=batch, leaf=leaf,
                            state=JobState.SKIPPED, full=False,
                            challenge_deadline=batch.challenge_deadline,
                        )  # fmt: skip


def _count(store: Store, legacy: bool) -> dict[str, int]:
    """The job counts a tick's metrics read: the old ``GROUP BY``, or the kept counts (which
    add the counted, unstored leaves to ``skipped``)."""
    if legacy:
        rows = store.conn.execute("SELECT state, COUNT(*) FROM ch_jobs GROUP BY state")
        return {str(state): int(c) for state, c in rows.fetchall()}
    return store.state_counts()


def bench_growth(sizes: list[int], folder: Path) -> dict[str, float]:
    """Issue 14: the challenger's database and per-tick count read, now and the old way."""
    import statistics

    out: dict[str, float] = {}
    for n in sizes:
        for legacy in (True, False):
            way = "old" if legacy else "new"
            path = folder / f"growth-{n}-{way}.sqlite"
            store = _growth_store(path, legacy)
            start = time.perf_counter()
            _record_leaves(store, n, 1000, legacy)
            recorded = time.perf_counter() - start
            times = []
            for _ in range(21):
                t = time.perf_counter()
                counts = _count(store, legacy)
                times.append(time.perf_counter() - t)
            # Both ways count every leave once (the old leaves_skipped counter is absent).
            assert sum(counts.values()) == n, counts
            store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            size = path.stat().st_size
            store.conn.close()
            out[f"{n}_{way}_record_s"] = recorded
            out[f"{n}_{way}_count_us"] = statistics.median(times) * 1e6
            out[f"{n}_{way}_db_mb"] = size / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="on-chain commitments to follow")
    parser.add_argument("--leaves", type=int, default=5000, help="leaves in the batch")
    parser.add_argument("--reexec", type=int, default=2000, help="re-executions")
    parser.add_argument("--hostile", type=int, default=20, help="batches of dripping nodes")
    parser.add_argument(
        "--growth", default="10000,100000", help="batch leaves recorded (comma-separated sizes)"
    )
    parser.add_argument("--only", default=None, help="run one section (e.g. growth)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-challenger-") as tmp:
        folder = Path(tmp)
        sections: dict[str, Callable[[], dict[str, float]]] = {
            "follow_onchain": lambda: bench_follow_onchain(args.jobs, folder),
            "follow_batch": lambda: bench_follow_batch(args.leaves, folder),
            "hostile_nodes": lambda: bench_hostile_nodes(args.hostile, folder),
            "reexecute_tiny_mlp": lambda: bench_reexecute(args.reexec, folder),
            "growth": lambda: bench_growth([int(v) for v in args.growth.split(",")], folder),
        }
        results = {name: run() for name, run in sections.items() if args.only in (None, name)}
    for section, values in results.items():
        print(section)
        for key, value in values.items():
            print(f"  {key:<32} {value:,.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
