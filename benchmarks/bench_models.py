"""Per-model cost of the zk pipeline: settings, calibration, setup, prove, verify, memory, gas.

    .venv/bin/python benchmarks/bench_models.py                 # every model in MODELS
    .venv/bin/python benchmarks/bench_models.py tiny_mlp test_Linear --no-chain
    .venv/bin/python benchmarks/bench_models.py --json out.json
    .venv/bin/python benchmarks/bench_models.py --tau-only      # domain, tau kind, tau, worst

``--tau-only`` builds each circuit (no keys, no proof) over the default domain [-1, 1] and runs
the tolerance measurement of onboarding (sound bound where the ops allow it, adversarial
search), next to the v1 rule (200 random inputs in the calibration range, 50 % margin) on a
one-sample calibration for contrast.

Each model runs in a fresh child process (so peak memory, ru_maxrss, is that model's alone)
with its own empty cache folder (so every stage is really timed, never a cache hit) and a dev
SRS (generation time reported separately; not secure, benchmarks only). The parent then deploys
each verifier on a local anvil through Ape and measures ``verifyProof`` gas.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Models built in tests (tests/fixtures/models.py) and single-layer models shipped by `onnx`.
BUILT = ["tiny_mlp", "linear_sigmoid", "tiny_conv", "avgpool"]
#: pytorch-converted models are upgraded to opset 13 first (onnxruntime lacks opset-6 kernels).
PYTORCH_CONVERTED = [
    "test_Linear",
    "test_Conv1d",
    "test_Conv2d",
    "test_AvgPool2d",
    "test_MaxPool1d",
    "test_BatchNorm1d_3d_input_eval",
    "test_BatchNorm2d_eval",
    "test_ReLU",
    "test_Sigmoid",
    "test_Tanh",
    "test_LeakyReLU",
    "test_Softmax",
    "test_PReLU_1d",
    "test_Softplus",
    "test_ConvTranspose2d",
]
MODELS = BUILT + PYTORCH_CONVERTED


def model_path(name: str, folder: Path) -> Path:
    from tests.fixtures import models

    return models.model_file(name, folder)


def run_one(name: str) -> dict[str, Any]:
    """Build, measure tolerance, prove and verify one model in this process."""
    import numpy as np

    from spotcheck.encoding import quantize
    from verifier import prove as proving
    from verifier import tolerance
    from verifier.artifacts import StageEvent, build_artifacts

    stages: dict[str, float] = {}

    def progress(e: StageEvent) -> None:
        stages[e.stage] = stages.get(e.stage, 0.0) + e.seconds

    with tempfile.TemporaryDirectory(prefix="spotcheck-bench-") as tmp:
        folder = Path(tmp)
        path = model_path(name, folder)
        start = time.perf_counter()
        a = build_artifacts(path, cache_root=folder / "cache", progress=progress)
        build_s = time.perf_counter() - start
        t0 = time.perf_counter()
        report = tolerance.measure(a, random_samples=50)
        tol_s = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        q = quantize(rng.uniform(-1, 1, a.input_len), a.input_scale)
        t0 = time.perf_counter()
        bundle = proving.prove(a, q)
        prove_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ok = proving.verify_offchain(a, bundle)
        verify_s = time.perf_counter() - t0
        compiled = a.compiled_verifier()
        return {
            "model": name,
            "input_len": a.input_len,
            "output_len": a.output_len,
            "logrows": a.logrows,
            "input_scale": a.input_scale,
            "output_scale": a.output_scale,
            "settings_s": stages.get("settings", 0.0),
            "calibrate_s": stages.get("calibrate", 0.0),
            "compile_s": stages.get("compile", 0.0),
            "srs_s": stages.get("srs", 0.0),
            "setup_s": stages.get("setup", 0.0),
            "verifier_s": stages.get("verifier", 0.0) + stages.get("solc", 0.0),
            "build_s": build_s,
            "tolerance_s": tol_s,
            "prove_s": prove_s,
            "verify_s": verify_s,
            "verified": ok,
            "max_dev": report.max_deviation,
            **_tau_fields(report),
            "pk_bytes": a.pk_path.stat().st_size,
            "runtime_bytes": len(compiled.runtime_bytecode),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # for the on-chain part in the parent process
            "verifier_json": compiled.to_json(),
            "proof": "0x" + bundle.proof.hex(),
            "instances": [str(v) for v in bundle.instances],
        }


def _tau_fields(report: Any) -> dict[str, Any]:
    return {
        "domain": f"[{report.domain.lo}, {report.domain.hi}]" if report.domain else "-",
        "tau_kind": report.kind,
        "sound_bound": report.sound_bound,
        "worst_dev": report.max_deviation,
        "tau": report.tau,
        "searched": report.samples,
    }


def run_tau_only(name: str) -> dict[str, Any]:
    """Circuit (default domain) and tolerance only: the columns of docs/models.md's v2 table."""
    import numpy as np

    from verifier import tolerance
    from verifier.artifacts import build_circuit

    with tempfile.TemporaryDirectory(prefix="spotcheck-bench-") as tmp:
        folder = Path(tmp)
        path = model_path(name, folder)
        a = build_circuit(path, cache_root=folder / "cache")
        t0 = time.perf_counter()
        report = tolerance.measure(a)
        row = {"model": name, "output_scale": a.output_scale, **_tau_fields(report)}
        row["tolerance_s"] = time.perf_counter() - t0
        # v1's rule on the same circuit: calibration set + 200 random inputs in its range
        cal = a.calibration_inputs()
        v1_inputs = np.concatenate([cal, tolerance.random_inputs_in_range(cal, 200, 0)])
        v1_dev, _ = tolerance.measure_deviation(a, v1_inputs)
        row["v1_tau"] = tolerance.choose_tau(v1_dev.max_units)
        row["sound_note"] = report.sound_note
        return row


def run_child(name: str, timeout: int, tau_only: bool = False) -> dict[str, Any]:
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--tau-child" if tau_only else "--child", name],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"model": name, "error": f"timeout after {timeout} s"}
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            loaded: dict[str, Any] = json.loads(line)
            return loaded
    err = [ln for ln in out.stderr.splitlines() if "Error" in ln or "error" in ln]
    return {"model": name, "error": (err[-1] if err else f"exit {out.returncode}")[:200]}


def measure_gas(results: list[dict[str, Any]]) -> None:
    """Deploy every verifier on a local anvil and record verifyProof gas (adds ``gas``)."""
    from ape import accounts, networks

    from spotcheck.toolchain import ensure_anvil_on_path
    from verifier import solidity

    ensure_anvil_on_path()
    with networks.parse_network_choice("ethereum:local:foundry"):
        sender = accounts.test_accounts[0]
        for r in results:
            if "error" in r:
                continue
            compiled = solidity.CompiledVerifier.from_json(r["verifier_json"])
            try:
                contract = solidity.deploy_verifier(compiled, sender)
            except Exception as err:  # e.g. EIP-170 CreateContractSizeLimit
                r["gas"] = f"deploy failed: {str(err)[-60:]}"
                continue
            proof = bytes.fromhex(r["proof"][2:])
            instances = [int(v) for v in r["instances"]]
            receipt = contract.verifyProof(proof, instances, sender=sender)
            r["gas"] = receipt.gas_used
            r["onchain_ok"] = not receipt.failed


COLUMNS = [
    ("model", "{}"),
    ("logrows", "{}"),
    ("input_len", "{}"),
    ("settings_s", "{:.2f}"),
    ("calibrate_s", "{:.2f}"),
    ("setup_s", "{:.2f}"),
    ("prove_s", "{:.2f}"),
    ("verify_s", "{:.3f}"),
    ("peak_rss_mb", "{:.0f}"),
    ("pk_bytes", "{}"),
    ("runtime_bytes", "{}"),
    ("gas", "{}"),
    ("max_dev", "{}"),
    ("tau", "{}"),
]


TAU_COLUMNS = [
    ("model", "{}"),
    ("output_scale", "{}"),
    ("domain", "{}"),
    ("tau_kind", "{}"),
    ("tau", "{}"),
    ("worst_dev", "{}"),
    ("sound_bound", "{}"),
    ("v1_tau", "{}"),
    ("searched", "{}"),
    ("tolerance_s", "{:.1f}"),
]


def table(results: list[dict[str, Any]], columns: list[tuple[str, str]] = COLUMNS) -> str:
    """A Markdown table (docs/benchmarks.md quotes it)."""
    head = "| " + " | ".join(c for c, _ in columns) + " |"
    rows = [head, "|" + "---|" * len(columns)]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['model']} | failed: {r['error']} |")
            continue
        cells = []
        for col, fmt in columns:
            value = r.get(col)
            if col == "pk_bytes" and value is not None:
                cells.append(f"{value / 1e6:.0f} MB")
            else:
                cells.append("-" if value is None else fmt.format(value))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=MODELS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--no-chain", action="store_true", help="skip on-chain gas")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per model")
    parser.add_argument("--json", type=Path, help="also write raw results here")
    parser.add_argument("--tau-only", action="store_true", help="circuit + tolerance only")
    parser.add_argument("--tau-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child)))
        return
    if args.tau_child:
        print(json.dumps(run_tau_only(args.tau_child)))
        return
    if args.tau_only:
        rows = []
        for name in args.models:
            r = run_child(name, args.timeout, tau_only=True)
            print(f"{name}: {r.get('error') or r['tau_kind']}", file=sys.stderr, flush=True)
            rows.append(r)
        print(table(rows, TAU_COLUMNS))
        for r in rows:
            if r.get("sound_note"):
                print(f"- {r['model']}: {r['sound_note']}")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return
    results = []
    for name in args.models:
        r = run_child(name, args.timeout)
        status = r.get("error") or f"logrows {r['logrows']}, prove {r['prove_s']:.1f} s"
        print(f"{name}: {status}", file=sys.stderr, flush=True)
        results.append(r)
    if not args.no_chain:
        measure_gas(results)
    print(table(results))
    if args.json:
        slim = [
            {k: v for k, v in r.items() if k not in ("verifier_json", "proof", "instances")}
            for r in results
        ]
        args.json.write_text(json.dumps(slim, indent=2))


if __name__ == "__main__":
    main()
