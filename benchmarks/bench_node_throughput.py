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


def plain_round(runtime: ModelRuntime, inputs: list[np.ndarray]) -> float:
    runner = runtime.runner
    start = time.perf_counter()
    for x in inputs:
        runner.run(x)
    return len(inputs) / (time.perf_counter() - start)


def node_round(
    server: JobServer,
    runtime: ModelRuntime,
    cutter: BatchCutter,
    inputs: list[np.ndarray],
    clients: int,
    batch_size: int,
) -> float:
    def one(x: np.ndarray) -> None:
        server.serve(MODEL_ID, runtime.quantize_input(x))

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for i in range(0, len(inputs), batch_size):
            list(pool.map(one, inputs[i : i + batch_size]))
            cutter.cut(force=True)  # seal what was served (a full batch, or the tail)
    return len(inputs) / (time.perf_counter() - start)


def bench(name: str, args: argparse.Namespace, folder: Path) -> tuple[float, float, int]:
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
    return statistics.median(plain), statistics.median(node), runtime.input_len


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
            plain, node, inputs = bench(name, args, Path(tmp))
            per_job = 1 / node + args.commit_seconds / args.batch_size
            rows.append((name, inputs, plain, node, 1 / per_job))
    header = (
        f"{'model':<18} {'inputs':>7} {'plain ORT jobs/s':>17} {'node jobs/s':>12} "
        f"{'node+commit':>12} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, inputs, plain, node, amortized in rows:
        print(
            f"{name:<18} {inputs:>7} {plain:>17.1f} {node:>12.1f} {amortized:>12.1f} "
            f"{amortized / plain:>6.3f}"
        )


if __name__ == "__main__":
    main()
