"""Node throughput vs plain onnxruntime, in one run, on the same inputs.

For each model, rounds alternate between

- **plain**: one onnxruntime session (the node's own session settings: 1 intra-op thread),
  called back to back on the float inputs;
- **node**: the node's serving path on the same inputs: quantize the input, run the model on
  the canonical input, quantize the output, hash input and output (``sha256(abi.encode
  (int256[]))``), build and sign the leaf, persist the job durably (SQLite WAL), and every
  ``--batch-size`` jobs seal a batch (Merkle tree, root and leaf indexes stored). Requests come
  from ``--clients`` threads as they would from HTTP; inference itself is serialised on the
  model's one worker thread, so onnxruntime gets the same cores as in the plain run and the
  node's extra work overlaps it on a spare core.

Both sides use the very same ``InferenceSession`` object (so the same session options: the
node's ``--threads`` intra-op threads, one inter-op thread, CPU provider) and the same inputs.
Rounds are interleaved, and which side goes first alternates from round to round, so drift in
machine load hits both. The batch commit transaction itself (one ``commitBatch`` per batch,
~100k gas, sent from the chain loop thread, not the serving path) is added to the node's time
from ``--commit-seconds`` amortized per job. The median of ``--rounds`` rounds is reported for
each side, with every round's pair and the load average before and after each model: other
processes on the machine take the core the node's extra work needs, so only numbers measured on
a quiet machine mean anything (``--wait-load 1.5`` waits for one, up to ``--wait-max`` s).

Batched requests (``--request-size N``, issue 14): the inputs go in requests of N. Plain
onnxruntime runs each request's inputs as one ``run_rows`` call (one session call per row,
as the node does: rows are never run as one batch, see ``OnnxRunner.run_rows``); the node
serves each request through ``JobServer.serve_many``
(numpy quantization and hashing, one signature over the request's sub-root, one SQLite
transaction) and encodes its JSON answer (``prover.api``). The table then also shows the
node's extra CPU per job over plain onnxruntime (microseconds), and a per-stage breakdown of
one request timed stage by stage on one thread says where those microseconds go.

    .venv/bin/python benchmarks/bench_node_throughput.py
    .venv/bin/python benchmarks/bench_node_throughput.py --models tiny_mlp light_resnet50
    .venv/bin/python benchmarks/bench_node_throughput.py --models tiny_mlp tiny_conv \
        --request-size 256 --jobs 8192
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prover.api import _batch_json  # noqa: E402
from prover.batching import BatchCutter, JobServer  # noqa: E402
from prover.inference import InferenceEngine, ModelRuntime, ModelSpec  # noqa: E402
from prover.receipts import KeySigner, ReceiptDomain, ecdsa_backend  # noqa: E402
from prover.store import Store  # noqa: E402
from spotcheck.encoding import hash_rows, leaf_hashes  # noqa: E402
from spotcheck.merkle import MerkleTree  # noqa: E402

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODEL_ID = bytes.fromhex("5c" * 32)
# receipts are signed for one deployment; the benchmark signs for a made-up one (anvil chain id)
DOMAIN = ReceiptDomain(chain_id=31337, job_manager="0x" + "11" * 20)


def model_path(name: str, folder: Path) -> Path:
    from tests.fixtures import models

    if name in models.BUILDERS:
        return models.build(name, folder)
    path = LIGHT / f"{name}.onnx"
    if not path.is_file():
        raise SystemExit(f"{path} not found (is the onnx package installed?)")
    return path


def plain_round(runtime: ModelRuntime, inputs: list[np.ndarray]) -> tuple[float, float]:
    """(jobs per second, CPU milliseconds per job)."""
    runner = runtime.runner
    start, cpu = time.perf_counter(), time.process_time()
    for x in inputs:
        runner.run(x)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(inputs) / wall, 1000 * cpu / len(inputs)


def node_round(
    server: JobServer,
    runtime: ModelRuntime,
    cutter: BatchCutter,
    inputs: list[np.ndarray],
    clients: int,
    batch_size: int,
) -> tuple[float, float]:
    def one(x: np.ndarray) -> None:
        server.serve(MODEL_ID, runtime.quantize_input(x))

    start, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(clients) as pool:
        for i in range(0, len(inputs), batch_size):
            list(pool.map(one, inputs[i : i + batch_size]))
            cutter.cut(force=True)  # seal what was served (a full batch, or the tail)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(inputs) / wall, 1000 * cpu / len(inputs)


def plain_batched_round(runtime: ModelRuntime, requests: list[np.ndarray]) -> tuple[float, float]:
    """Plain onnxruntime over the same requests: one ``run_rows`` per request."""
    runner = runtime.runner
    start, cpu = time.perf_counter(), time.process_time()
    for rows in requests:
        runner.run_rows(rows)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    jobs = sum(len(r) for r in requests)
    return jobs / wall, 1000 * cpu / jobs


def node_batched_round(
    server: JobServer,
    runtime: ModelRuntime,
    cutter: BatchCutter,
    requests: list[np.ndarray],
    clients: int,
    batch_size: int,
) -> tuple[float, float]:
    def one(rows: np.ndarray) -> None:
        _batch_json(server.serve_many(MODEL_ID, runtime.quantize_inputs(rows)))

    per_batch = max(1, batch_size // max(1, len(requests[0])))
    start, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(clients) as pool:
        for i in range(0, len(requests), per_batch):
            list(pool.map(one, requests[i : i + per_batch]))
            cutter.cut(force=True)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    jobs = sum(len(r) for r in requests)
    return jobs / wall, 1000 * cpu / jobs


class Stages:
    """Seconds spent per stage, summed over the requests timed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def timed(self, stage: str, fn: Any, *args: Any) -> Any:
        t = time.perf_counter()
        out = fn(*args)
        self.add(stage, time.perf_counter() - t)
        return out

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


SIGNING = ("leaves (2 keccak each)", "sub-tree (1 keccak each)", "one signature")


def time_one_request(
    server: JobServer, runtime: ModelRuntime, store: Store, rows: np.ndarray, st: Stages
) -> None:
    """Serve ``rows`` as ``serve_many`` does, stage by stage on this thread, into ``st``."""
    q = st.timed("quantize inputs", runtime.quantize_inputs, rows)
    x = q / float(2**runtime.spec.input_scale)
    y = st.timed("onnxruntime (plain)", runtime.runner.run_rows, x)
    oq = st.timed("quantize outputs", runtime.quantize_outputs, y)
    ih = st.timed("hash inputs (sha256)", hash_rows, q)
    oh = st.timed("hash outputs (sha256)", hash_rows, oq)
    trees: list[MerkleTree] = []

    def sign(job_ids: list[int]) -> tuple[list[bytes], bytes]:
        leaves = st.timed(SIGNING[0], leaf_hashes, job_ids, MODEL_ID, ih, oh)
        trees.append(st.timed(SIGNING[1], MerkleTree, leaves))
        return leaves, st.timed(SIGNING[2], server.signer.sign_leaf, trees[0].root)

    before = sum(st.seconds.get(k, 0.0) for k in SIGNING)
    t = time.perf_counter()
    store.record_served_many(MODEL_ID, q, oq, ih, oh, sign)
    signing = sum(st.seconds[k] for k in SIGNING) - before
    st.add("SQLite insert (one transaction)", time.perf_counter() - t - signing)
    st.timed("seal batch (tree, one UPDATE)", store.seal_batch, MODEL_ID, len(rows))
    served = server.serve_many(MODEL_ID, q)
    st.timed("answer JSON (with the sub-paths)", _batch_json, served)
    store.seal_batch(MODEL_ID, len(rows))


def stage_breakdown(
    server: JobServer, runtime: ModelRuntime, store: Store, rows: np.ndarray, repeat: int
) -> dict[str, float]:
    """Microseconds per job of each stage of serving one request, timed one after the other
    on one thread (the node overlaps some of them); the same calls ``serve_many`` makes. The
    median over ``repeat`` requests, so that a request preempted by another process does not
    count (on a loaded machine the stages are still slower than on a quiet one)."""
    runs: list[dict[str, float]] = []
    for _ in range(repeat):
        st = Stages()
        time_one_request(server, runtime, store, rows, st)
        runs.append(st.seconds)
    return {k: 1e6 * statistics.median(r[k] for r in runs) / len(rows) for k in runs[0]}


Round = tuple[float, float]  # (jobs per second, CPU milliseconds per job)


@dataclass(frozen=True)
class Result:
    name: str
    inputs: int
    plain: list[Round]
    node: list[Round]
    load_before: float
    load_after: float
    stages: dict[str, float] | None = None


def wait_for_quiet(max_load: float, max_wait_s: float) -> None:
    """Poll until the 1-minute load average is below ``max_load`` (or give up after a while)."""
    if max_load <= 0:
        return
    deadline = time.monotonic() + max_wait_s
    while os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        time.sleep(10)
    if os.getloadavg()[0] >= max_load:
        logging.warning("load average still %.1f after %.0f s", os.getloadavg()[0], max_wait_s)


def bench(name: str, args: argparse.Namespace, folder: Path) -> Result:
    spec = ModelSpec(MODEL_ID, model_path(name, folder), input_scale=7, output_scale=13, tau=64)
    runtime = ModelRuntime.load(spec, intra_op_threads=args.threads)
    rng = np.random.default_rng(0)
    n = args.jobs if name == "tiny_mlp" else args.heavy_jobs
    inputs = [rng.uniform(-1, 1, size=runtime.input_len) for _ in range(n)]
    store = Store(folder / f"{name}.sqlite")
    server = JobServer(
        InferenceEngine({MODEL_ID: runtime}),
        store,
        KeySigner("0x" + "42" * 32, DOMAIN),
        aux_threads=args.aux_threads,
    )
    cutter = BatchCutter(store, args.batch_size, interval_s=1e9)
    for x in inputs[:3]:  # warm-up both paths
        runtime.runner.run(x)
        server.serve(MODEL_ID, runtime.quantize_input(x))
    if args.request_size > 1:
        return bench_batched(name, args, runtime, server, store, cutter, inputs)
    wait_for_quiet(args.wait_load, args.wait_max)
    load_before = os.getloadavg()[0]
    plain: list[Round] = []
    node: list[Round] = []
    for r in range(args.rounds):
        if r % 2 == 0:
            plain.append(plain_round(runtime, inputs))
            node.append(node_round(server, runtime, cutter, inputs, args.clients, args.batch_size))
        else:
            node.append(node_round(server, runtime, cutter, inputs, args.clients, args.batch_size))
            plain.append(plain_round(runtime, inputs))
    load_after = os.getloadavg()[0]
    server.close()
    runtime.close()
    store.close()
    return Result(name, runtime.input_len, plain, node, load_before, load_after)


def bench_batched(
    name: str,
    args: argparse.Namespace,
    runtime: ModelRuntime,
    server: JobServer,
    store: Store,
    cutter: BatchCutter,
    inputs: list[np.ndarray],
) -> Result:
    size = args.request_size
    matrix = np.stack(inputs)
    requests = [matrix[i : i + size] for i in range(0, len(matrix), size)]
    node_batched_round(server, runtime, cutter, requests[:2], args.clients, args.batch_size)
    wait_for_quiet(args.wait_load, args.wait_max)
    load_before = os.getloadavg()[0]
    plain: list[Round] = []
    node: list[Round] = []
    for r in range(args.rounds):
        sides = [
            lambda: plain.append(plain_batched_round(runtime, requests)),
            lambda: node.append(
                node_batched_round(server, runtime, cutter, requests, args.clients, args.batch_size)
            ),
        ]
        for side in sides if r % 2 == 0 else sides[::-1]:
            side()
    stages = stage_breakdown(server, runtime, store, requests[0], repeat=args.stage_repeat)
    load_after = os.getloadavg()[0]
    server.close()
    runtime.close()
    store.close()
    return Result(name, runtime.input_len, plain, node, load_before, load_after, stages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["tiny_mlp", "light_squeezenet", "light_resnet50"]
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per round, small model")
    parser.add_argument("--heavy-jobs", type=int, default=60, help="jobs per round, heavy model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument(
        "--aux-threads",
        type=int,
        default=None,
        help="node threads for hashing, signing and storing (default: CPUs - 1)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--stage-repeat", type=int, default=15, help="requests timed for the stage breakdown"
    )
    parser.add_argument(
        "--request-size",
        type=int,
        default=1,
        help="inputs per request (1: one job per request, as before; N: batched requests)",
    )
    parser.add_argument(
        "--commit-seconds",
        type=float,
        default=0.05,
        help="wall time of one commitBatch transaction, amortized over the batch",
    )
    parser.add_argument(
        "--wait-load",
        type=float,
        default=0.0,
        help="before each model, wait until the 1-minute load average is below this (0: never)",
    )
    parser.add_argument("--wait-max", type=float, default=1200.0, help="longest wait, seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="spotcheck-bench-") as tmp:
        results = [bench(name, args, Path(tmp)) for name in args.models]
    amortized = args.commit_seconds / args.batch_size

    def node_rate(jobs_per_s: float) -> float:
        return 1 / (1 / jobs_per_s + amortized)

    header = (
        f"{'model':<18} {'inputs':>7} {'plain ORT jobs/s':>17} {'node jobs/s':>12} "
        f"{'ratio':>6} {'plain CPU ms/job':>17} {'node CPU ms/job':>16} {'load':>10}"
    )
    print(header)
    print("-" * len(header))
    med = statistics.median
    for res in results:
        plain = med(p[0] for p in res.plain)
        node = node_rate(med(n[0] for n in res.node))
        print(
            f"{res.name:<18} {res.inputs:>7} {plain:>17.1f} {node:>12.1f} {node / plain:>6.3f} "
            f"{med(p[1] for p in res.plain):>17.3f} {med(n[1] for n in res.node):>16.3f} "
            f"{res.load_before:>4.1f}->{res.load_after:<4.1f}"
        )
    for res in results:
        if res.stages is None:
            continue
        extra = 1000 * (med(n[1] for n in res.node) - med(p[1] for p in res.plain))
        serving = med(n[0] for n in res.node)
        print(
            f"{res.name}: requests of {args.request_size}: node extra CPU per job over plain "
            f"onnxruntime {extra:.1f} us (target <= 25 us); serving {serving:,.0f} jobs/s "
            f"({node_rate(serving):,.0f} with each commitBatch counted as blocking the serving "
            "path, as the table does; the node sends it from its chain thread)"
        )
        other = sum(v for k, v in res.stages.items() if k != "onnxruntime (plain)")
        print(f"  per-stage, one request on one thread (us per job; {other:.1f} us besides ORT):")
        for stage, us in sorted(res.stages.items(), key=lambda kv: -kv[1]):
            print(f"    {stage:<36} {us:>8.2f}")
    for res in results:
        pairs = ", ".join(
            f"{p[0]:.1f}/{node_rate(n[0]):.1f}" for p, n in zip(res.plain, res.node, strict=True)
        )
        print(f"{res.name} rounds (plain/node jobs/s): {pairs}")
    print(
        f"node jobs/s include one commitBatch ({args.commit_seconds} s) per {args.batch_size} "
        f"jobs; requests of {args.request_size}; {args.clients} client threads; "
        f"onnxruntime {args.threads} intra-op thread(s), "
        f"same session both sides; {args.aux_threads or 'CPUs - 1'} serving thread(s); "
        f"ECDSA {ecdsa_backend()}; load average (1 min) on "
        f"{os.cpu_count()} CPUs shown before->after each model"
    )


if __name__ == "__main__":
    main()
