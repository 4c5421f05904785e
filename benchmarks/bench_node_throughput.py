"""Node throughput vs plain onnxruntime, in one run, on the same inputs.

For each model, rounds alternate between

- **plain**: one onnxruntime session (the node's own session settings: 1 intra-op thread),
  called back to back on the float inputs;
- **node**: the node's serving path on the same inputs: quantize the input, run the model on
  the canonical input, quantize the output, hash input and output (``keccak(abi.encode
  (int256[]))``), build and sign the leaf, persist the job durably (SQLite WAL), and every
  ``--batch-size`` jobs seal a batch (Merkle tree and every leaf's proof, stored). Requests come
  from ``--clients`` threads as they would from HTTP; inference itself is serialised on the
  model's one worker thread, so onnxruntime gets the same cores as in the plain run and the
  node's extra work overlaps it on a spare core.

The batch commit transaction itself (one ``commitBatch`` per batch, ~100k gas, sent from the
chain loop thread, not the serving path) is reported from ``--commit-seconds`` amortized per
job. The median of ``--rounds`` rounds is reported for each side.

    .venv/bin/python benchmarks/bench_node_throughput.py
    .venv/bin/python benchmarks/bench_node_throughput.py --models tiny_mlp light_resnet50
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
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prover.batching import BatchCutter, JobServer  # noqa: E402
from prover.inference import InferenceEngine, ModelRuntime, ModelSpec  # noqa: E402
from prover.receipts import KeySigner  # noqa: E402
from prover.store import Store  # noqa: E402

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODEL_ID = bytes.fromhex("5c" * 32)


def model_path(name: str, folder: Path) -> Path:
    if name == "tiny_mlp":
        from tests.fixtures import models

        return models.build("tiny_mlp", folder)
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


Result = tuple[float, float, float, float, int]


def bench(name: str, args: argparse.Namespace, folder: Path) -> Result:
    spec = ModelSpec(MODEL_ID, model_path(name, folder), input_scale=7, output_scale=13, tau=64)
    runtime = ModelRuntime.load(spec)
    rng = np.random.default_rng(0)
    n = args.jobs if name == "tiny_mlp" else args.heavy_jobs
    inputs = [rng.uniform(-1, 1, size=runtime.input_len) for _ in range(n)]
    store = Store(folder / f"{name}.sqlite")
    server = JobServer(InferenceEngine({MODEL_ID: runtime}), store, KeySigner("0x" + "42" * 32))
    cutter = BatchCutter(store, args.batch_size, interval_s=1e9)
    for x in inputs[:3]:  # warm-up both paths
        runtime.runner.run(x)
        server.serve(MODEL_ID, runtime.quantize_input(x))
    plain, node = [], []
    for _ in range(args.rounds):
        plain.append(plain_round(runtime, inputs))
        node.append(node_round(server, runtime, cutter, inputs, args.clients, args.batch_size))
    runtime.close()
    store.close()
    med = statistics.median
    return (
        med(p[0] for p in plain),
        med(n[0] for n in node),
        med(p[1] for p in plain),
        med(n[1] for n in node),
        runtime.input_len,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["tiny_mlp", "light_squeezenet", "light_resnet50"]
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per round, small model")
    parser.add_argument("--heavy-jobs", type=int, default=60, help="jobs per round, heavy model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--commit-seconds",
        type=float,
        default=0.05,
        help="wall time of one commitBatch transaction, amortized over the batch",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="spotcheck-bench-") as tmp:
        for name in args.models:
            plain, node, plain_cpu, node_cpu, inputs = bench(name, args, Path(tmp))
            per_job = 1 / node + args.commit_seconds / args.batch_size
            rows.append((name, inputs, plain, 1 / per_job, plain_cpu, node_cpu))
    header = (
        f"{'model':<18} {'inputs':>7} {'plain ORT jobs/s':>17} {'node jobs/s':>12} "
        f"{'ratio':>6} {'plain CPU ms/job':>17} {'node CPU ms/job':>16}"
    )
    print(header)
    print("-" * len(header))
    for name, inputs, plain, node, plain_cpu, node_cpu in rows:
        print(
            f"{name:<18} {inputs:>7} {plain:>17.1f} {node:>12.1f} {node / plain:>6.3f} "
            f"{plain_cpu:>17.3f} {node_cpu:>16.3f}"
        )
    print(
        f"node jobs/s include one commitBatch ({args.commit_seconds} s) per {args.batch_size} "
        f"jobs; {args.clients} client threads; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
